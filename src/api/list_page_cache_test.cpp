#include "api/list_page_cache.h"

#include <gtest/gtest.h>

namespace transnotes::api {
namespace {

ListPageCache::Page page(std::int64_t version, std::size_t bytes, char fill = 'x') {
  return {version, std::make_shared<const std::string>(bytes, fill), 1, false};
}

TEST(ListPageCache, ServesAPageOnlyUnderTheVersionItWasStoredWith) {
  ListPageCache cache(1 << 20);
  const ListPageCache::Key key{7, 100, 0};
  cache.put(key, page(3, 10));
  ASSERT_TRUE(cache.get(key, 3));
  EXPECT_EQ(*cache.get(key, 3)->body, std::string(10, 'x'));
  EXPECT_FALSE(cache.get(key, 4));
  EXPECT_EQ(cache.size(), 0u) << "a page older than the current version is dropped";
  EXPECT_FALSE(cache.get({8, 100, 0}, 3));
}

TEST(ListPageCache, AnOlderPageNeverReplacesANewerOne) {
  ListPageCache cache(1 << 20);
  const ListPageCache::Key key{1, 10, 0};
  cache.put(key, page(5, 10, 'n'));
  cache.put(key, page(4, 10, 'o'));
  ASSERT_TRUE(cache.get(key, 5));
  EXPECT_EQ(cache.get(key, 5)->body->front(), 'n');
  EXPECT_FALSE(cache.get(key, 4));
  EXPECT_TRUE(cache.get(key, 5)) << "a reader of an older version leaves the newer page alone";
}

TEST(ListPageCache, StaysWithinItsBytesDroppingTheLeastRecentlyUsed) {
  ListPageCache cache(3 * 1000);
  for (std::int64_t offset = 0; offset < 3; ++offset) cache.put({1, 10, offset}, page(1, 800));
  ASSERT_TRUE(cache.get({1, 10, 0}, 1));  // now the most recently used
  cache.put({1, 10, 3}, page(1, 800));
  EXPECT_LE(cache.bytes(), 3000u);
  EXPECT_TRUE(cache.get({1, 10, 0}, 1));
  EXPECT_FALSE(cache.get({1, 10, 1}, 1));
  EXPECT_TRUE(cache.get({1, 10, 3}, 1));
  cache.put({2, 10, 0}, page(1, 5000));
  EXPECT_FALSE(cache.get({2, 10, 0}, 1)) << "larger than the whole bound";
  EXPECT_LE(cache.bytes(), 3000u);
}

}  // namespace
}  // namespace transnotes::api
