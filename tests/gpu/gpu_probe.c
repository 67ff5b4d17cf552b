/* tests/gpu/gpu_probe.c — prints the visible CUDA devices' count; exits 77 (ctest's skip code) with
 * "skipped: no GPU" when there is none. The shell-driven GPU tests start with it. */
#include "tests/gpu/gpu_check.h"

int main(void) {
  if (gpu_skip_if_none()) return GPU_SKIP;
  printf("%d CUDA device(s) visible\n", bp_cuda_device_count());
  return 0;
}
