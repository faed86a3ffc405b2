# transnotes_layer(<name> [PUBLIC_HEADERS <file.h>...] [TEST_SUPPORT_HEADERS <file.h>...]
#                  [DEPS <targets>...] [TEST_DEPS <targets>...])
# Builds the current folder as library transnotes_<name>: every *.cpp except *_test.cpp.
# Every *_test.cpp beside it becomes the GoogleTest executable <name>_tests, registered with CTest.
# Headers are included as "<layer>/<file>.h" from src/.
#
# The layer's boundary: PUBLIC_HEADERS are the only headers other layers may include (every
# other header in the folder is internal to the layer); TEST_SUPPORT_HEADERS may be included by
# other layers' tests only; DEPS must name every layer whose headers the library includes, and
# TEST_DEPS those only its tests include. tests/layering_check.py (a CTest test) holds the code to
# these declarations.
function(transnotes_layer name)
  cmake_parse_arguments(ARG "" "" "PUBLIC_HEADERS;TEST_SUPPORT_HEADERS;DEPS;TEST_DEPS" ${ARGN})
  foreach(header IN LISTS ARG_PUBLIC_HEADERS ARG_TEST_SUPPORT_HEADERS)
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${header})
      message(FATAL_ERROR "transnotes_layer(${name}): declared header ${header} does not exist")
    endif()
  endforeach()
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)
  if(tests)
    list(REMOVE_ITEM sources ${tests})
  endif()
  set(target transnotes_${name})
  if(sources)
    add_library(${target} STATIC ${sources})
    # PRIVATE: a layer reaches another layer's headers only by naming it in DEPS (which links it)
    # and by including what that layer declares public (tests/layering_check.py).
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  else()  # a layer whose implementation has not landed yet: headers only
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
  if(TRANSNOTES_BUILD_TESTS AND tests)
    add_executable(${name}_tests ${tests})
    target_include_directories(${name}_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${name}_tests PRIVATE ${target} ${ARG_TEST_DEPS} GTest::gtest GTest::gtest_main)
    target_compile_definitions(${name}_tests PRIVATE
      TRANSNOTES_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
      TRANSNOTES_BINARY_DIR="${PROJECT_BINARY_DIR}")
    gtest_discover_tests(${name}_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
  endif()
endfunction()
