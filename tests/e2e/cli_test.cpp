// The command line: translate through stdin/stdout, clear errors for bad configuration.
#include <gtest/gtest.h>

#include <string>

#include "e2e/harness.h"

namespace {

// The command's stdout and stderr together.
e2e::CommandResult run(const std::string& command) { return e2e::run_command(command + " 2>&1"); }

const std::string kBinary = TRANSNOTES_BINARY;

TEST(Cli, TranslatesStdinWithApertium) {
  auto r = run("printf 'Hello world.' | " + kBinary + " translate --from en --to es");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "Hola Mundo.\n");
  r = run("printf 'Hola mundo.\\n\\nAdiós.' | " + kBinary +
          " translate --from es --to en --engine apertium");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Hello World.\n\n"), std::string::npos) << r.output;
}

TEST(Cli, UnsupportedPairFailsClearly) {
  auto r = run("printf 'x' | " + kBinary + " translate --from en --to xx --engines apertium");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("xx"), std::string::npos) << r.output;
}

TEST(Cli, BadConfigurationIsOneLineAndExitCode2) {
  auto r = run(kBinary + " serve --port 70000");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("port"), std::string::npos);
  r = run("TRANSNOTES_WORKERS=-3 " + kBinary + " serve");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run(kBinary + " serve --db-write-batch 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("write batch"), std::string::npos) << r.output;
  r = run("REDIS_URL=foo://x " + kBinary + " serve --data-dir /nonexistent/never-created");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("REDIS_URL"), std::string::npos) << r.output;
  r = run("SECRET_KEY=0123456789abcdef0123456789abcdef " + kBinary +
          " serve --database-url postgresql://nobody@127.0.0.1:1/none");
  EXPECT_EQ(r.exit_code, 3) << r.output;  // unreachable database at start: one line, no crash
  EXPECT_NE(r.output.find("database unavailable"), std::string::npos) << r.output;
  // Production signs tokens with SECRET_KEY: missing or short, the service refuses to start.
  r = run("env -u SECRET_KEY " + kBinary +
          " serve --database-url postgresql://nobody@127.0.0.1:1/none");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("SECRET_KEY is not set"), std::string::npos) << r.output;
  r = run("SECRET_KEY=short " + kBinary + " serve --database-url postgresql://x@127.0.0.1:1/y");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("at least 32 bytes"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  // The open API on a public address needs the operator to say so.
  r = run(kBinary + " serve --auth open --host 0.0.0.0 --data-dir /nonexistent/never-created");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--allow-open-auth-on-network"), std::string::npos) << r.output;
  r = run(kBinary + " serve --auth sometimes");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  // Usage errors CLI11 finds (unknown flag, a value outside a list) are exit code 2 as well.
  r = run(kBinary + " serve --no-such-flag");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run(kBinary + " serve --log-format xml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run(kBinary + " serve --access-log maybe");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run(kBinary + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run(kBinary + " serve --throttle-translate 5/fortnight");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad throttle rate"), std::string::npos) << r.output;
  r = run(kBinary + " migrate --database-url mysql://x/y");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(Cli, MigrateCreatesTheDatabase) {
  char tmpl[] = "/tmp/transnotes-cli-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  auto r = run(kBinary + " migrate --data-dir " + std::string(tmpl));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run(kBinary + " migrate --data-dir " + std::string(tmpl));  // idempotent
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
