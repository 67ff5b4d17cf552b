/* frontend/tensor_proto.h — TensorProto decoding shared by the model loader and .pb readers. */
#ifndef BITPIPE_TENSOR_PROTO_H
#define BITPIPE_TENSOR_PROTO_H

#include "frontend/ir.h"
#include "onnx.pb-c.h"

/* An mmapped external-data range that a decoded value borrows (addr NULL when none). */
typedef struct {
  void *addr;
  size_t len;
  void *data;
  size_t bytes;
} bp_tensor_mapping;

/* Decodes tp into out. out->data either borrows tp's raw bytes or an mmapped range recorded in
 * *map (*owns = 0), or is a malloc'ed buffer (*owns = 1). base_dir: folder of the model file, for
 * external data (NULL: external data refused). to_f32 converts float16/bfloat16 to float32. */
int bp_tensor_proto_decode(const Onnx__TensorProto *tp, const char *base_dir, int to_f32, bp_value *out,
                           int *owns, bp_tensor_mapping *map, bp_err *e);

#endif
