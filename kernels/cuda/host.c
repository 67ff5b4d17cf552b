/* kernels/cuda/host.c — the host-staged path: an op without its own CUDA kernel (or a dtype its
 * kernel does not cover) runs the CPU kernel of the op table on host copies of its inputs, and its
 * outputs are copied back. It is correct for every op the CPU backend has, and slow (it waits for
 * the stream); the context counts the runs and names the ops (bp_cuda_host_runs/_ops), and
 * bp_cuda_op_table reports which ops take it, so it is never silent. */
#include "kernels/cuda/internal.h"

#include <stdlib.h>
#include <string.h>

int bp_cuda_eval_host(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                      bp_err *e) {
  bp_cuda *dc;
  if (bp_cuda_ctx(ctx, n, &dc, e) < 0) return -1;
  const bp_op_def *op = n->op ? n->op : bp_op_find(n->domain, n->op_type);
  if (!op || !op->eval)
    return bp_errf(e, "node '%s' (%s): no CPU kernel to stage through the host", n->name ? n->name : "", n->op_type);
  if (nin > 64 || nout > 64) return bp_errf(e, "node '%s' (%s): too many inputs or outputs", n->name, n->op_type);
  bp_value hv[64], ho[64], *hin[64] = {0}, *hout[64] = {0};
  void *owned[64] = {0};
  int rc = 0;
  for (int k = 0; k < nin; k++) {
    if (!in[k]) continue;
    hv[k] = *in[k];
    hin[k] = &hv[k];
    if (k < dc->nhost_in && dc->host_in[k]) {
      hv[k].data = (void *)dc->host_in[k];
      continue;
    }
    size_t bytes = bp_value_bytes(in[k]);
    owned[k] = malloc(bytes ? bytes : 1);
    if (!owned[k]) {
      rc = bp_errf(e, "node '%s' (%s): out of memory staging input %d", n->name, n->op_type, k);
      goto done;
    }
    hv[k].data = owned[k];
    if (bytes && in[k]->data) {
      cudaError_t crc = cudaMemcpyAsync(owned[k], in[k]->data, bytes, cudaMemcpyDeviceToHost, dc->stream);
      if (crc != cudaSuccess) {
        rc = bp_cuda_fail(e, n, NULL, "cudaMemcpyAsync(host, in[k]->data, bytes, cudaMemcpyDeviceToHost)",
                          cudaGetErrorString(crc), __FILE__, __LINE__);
        goto done;
      }
    }
  }
  {
    cudaError_t crc = cudaStreamSynchronize(dc->stream);
    if (crc != cudaSuccess) {
      rc = bp_cuda_fail(e, n, NULL, "cudaStreamSynchronize(dc->stream)", cudaGetErrorString(crc), __FILE__, __LINE__);
      goto done;
    }
  }
  for (int k = 0; k < nout; k++) {
    if (!out[k]) continue;
    ho[k] = *out[k];
    size_t bytes = bp_value_bytes(out[k]);
    ho[k].data = calloc(bytes ? bytes : 1, 1); /* the CPU executor hands kernels zeroed outputs */
    if (!ho[k].data) {
      rc = bp_errf(e, "node '%s' (%s): out of memory staging output %d", n->name, n->op_type, k);
      goto done;
    }
    hout[k] = &ho[k];
  }
  if (op->eval(ctx, n, hin, nin, hout, nout, e) < 0) {
    rc = -1;
    goto done;
  }
  for (int k = 0; k < nout; k++) {
    if (!hout[k]) continue;
    size_t bytes = bp_value_bytes(out[k]);
    if (!bytes) continue;
    /* from pageable memory the call returns once the data is staged, so freeing it next is safe */
    cudaError_t crc = cudaMemcpyAsync(out[k]->data, ho[k].data, bytes, cudaMemcpyHostToDevice, dc->stream);
    if (crc != cudaSuccess) {
      rc = bp_cuda_fail(e, n, NULL, "cudaMemcpyAsync(out[k]->data, host, bytes, cudaMemcpyHostToDevice)",
                        cudaGetErrorString(crc), __FILE__, __LINE__);
      goto done;
    }
  }
  {
    /* the host copies are freed below: wait until the stream has consumed them */
    cudaError_t crc = cudaStreamSynchronize(dc->stream);
    if (crc != cudaSuccess)
      rc = bp_cuda_fail(e, n, NULL, "cudaStreamSynchronize(dc->stream)", cudaGetErrorString(crc), __FILE__, __LINE__);
  }
  bp_cuda_note_host(dc, n->op_type);
done:
  for (int k = 0; k < nin; k++) free(owned[k]);
  for (int k = 0; k < nout; k++)
    if (hout[k]) free(ho[k].data);
  return rc;
}
