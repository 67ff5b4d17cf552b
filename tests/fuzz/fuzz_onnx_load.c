/* tests/fuzz/fuzz_onnx_load.c — libFuzzer target for the ONNX loader and the passes after it:
 * arbitrary bytes are parsed as a model, bound with small default dims, inferred and folded.
 * Any crash, leak or sanitizer report is a bug; errors are the expected outcome. */
#include "frontend/onnx_load.h"
#include "frontend/passes.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bp_err e = {0};
  /* No base dir: external data is refused, so the fuzzer never touches the file system. */
  bp_graph *g = bp_onnx_load_buffer(data, size, "fuzz-input", NULL, &e);
  if (!g) return 0;
  bp_binding binds[] = {{"batch", 2}, {"sequence", 4}, {"N", 2}};
  bp_ctx ctx = {0};
  /* Bounded work: skip huge graphs so one input cannot stall the run. */
  if (g->nnodes < 200) bp_prepare_graph(g, binds, 3, NULL, &ctx, 0, NULL, &e);
  bp_graph_free(g);
  return 0;
}
