/* tests/schedule/check.h — minimal test harness shared by the schedule tests: CHECK records a
 * failure with file and line and goes on; check_done prints "N passed, M failed". */
#ifndef BITPIPE_TEST_CHECK_H
#define BITPIPE_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_pass, check_fail;

#define CHECK(cond, ...)                                                                        \
  do {                                                                                          \
    if (cond) {                                                                                 \
      check_pass++;                                                                             \
    } else {                                                                                    \
      check_fail++;                                                                             \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                              \
      printf(__VA_ARGS__);                                                                      \
      printf("\n");                                                                             \
    }                                                                                           \
  } while (0)

#define CHECK_NEAR(a, b, tol, what)                                                             \
  CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: got %.6f, want %.6f", what, (double)(a),  \
        (double)(b))

static inline int check_done(void) {
  printf("%d passed, %d failed\n", check_pass, check_fail);
  return check_fail != 0;
}

#endif
