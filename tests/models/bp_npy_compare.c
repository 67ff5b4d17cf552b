/* tests/models/bp_npy_compare.c — compares two .npy files: same dtype and shape, and for floats
 * the max relative error max|got-want| / max(max|want|, tiny) at most --tol (default 1e-4);
 * integers exactly. Prints the figures; exit 0 when within tolerance.
 * usage: bp_npy_compare GOT.npy WANT.npy [--tol X] [--label TEXT] */
#include "frontend/npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *got_path = NULL, *want_path = NULL, *label = NULL;
  double tol = 1e-4;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) tol = atof(argv[++i]);
    else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) label = argv[++i];
    else if (!got_path) got_path = argv[i];
    else if (!want_path) want_path = argv[i];
    else {
      fprintf(stderr, "usage: bp_npy_compare GOT.npy WANT.npy [--tol X] [--label TEXT]\n");
      return 2;
    }
  }
  if (!want_path) {
    fprintf(stderr, "usage: bp_npy_compare GOT.npy WANT.npy [--tol X] [--label TEXT]\n");
    return 2;
  }
  bp_err e = {0};
  bp_value got, want;
  if (bp_npy_read(got_path, &got, &e) < 0 || bp_npy_read(want_path, &want, &e) < 0) {
    fprintf(stderr, "bp_npy_compare: %s\n", e.msg);
    return 1;
  }
  int rc = 0;
  char s1[160], s2[160];
  if (got.dtype != want.dtype || !bp_same_shape(&got, &want)) {
    fprintf(stderr, "bp_npy_compare: %s is %s %s but %s is %s %s\n", got_path, bp_dtype_name(got.dtype),
            bp_shape_str(&got, s1, sizeof s1), want_path, bp_dtype_name(want.dtype), bp_shape_str(&want, s2, sizeof s2));
    rc = 1;
  } else {
    int64_t n = bp_value_numel(&want);
    double max_abs = 0, max_ref = 0, max_elem_rel = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      double a = bp_get_f64(got.data, got.dtype, i), b = bp_get_f64(want.data, want.dtype, i);
      double d = fabs(a - b);
      if (isnan(a) != isnan(b)) bad++;
      if (!isnan(d) && d > max_abs) max_abs = d;
      if (fabs(b) > max_ref) max_ref = fabs(b);
      if (fabs(b) > 1e-3 && d / fabs(b) > max_elem_rel) max_elem_rel = d / fabs(b);
    }
    /* relative to the tensor's scale, so values near zero do not dominate */
    double rel = max_abs / (max_ref > 1e-30 ? max_ref : 1e-30);
    int ok = bad == 0 && (bp_dtype_is_float(want.dtype) ? rel <= tol : max_abs == 0);
    printf("%s%s%s %s: max abs err %.3g, max rel err %.3g (to max |ref| %.3g), max elementwise rel err %.3g (|ref|>1e-3), tol %.g: %s\n",
           label ? "[" : "", label ? label : "", label ? "]" : "", bp_shape_str(&want, s1, sizeof s1), max_abs, rel,
           max_ref, max_elem_rel, tol, ok ? "OK" : "FAIL");
    rc = ok ? 0 : 1;
  }
  free(got.data);
  free(want.data);
  return rc;
}
