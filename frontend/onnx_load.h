/* frontend/onnx_load.h — loading ONNX files (protobuf-c) into the IR, and decoding TensorProto
 * messages (initializers, Constant attributes, ONNX test-data .pb files). */
#ifndef BITPIPE_ONNX_LOAD_H
#define BITPIPE_ONNX_LOAD_H

#include "frontend/ir.h"

#include <stddef.h>

/* Parses the model at `path` into a new graph: opsets, inputs (with dim_params), outputs,
 * initializers (raw_data, typed fields, external data mmapped relative to the model's folder),
 * nodes and attributes. float16/bfloat16 initializers are converted to float32. Each node is bound
 * to its op table entry when one exists (unsupported ops are reported by bp_graph_check_ops). */
bp_graph *bp_onnx_load(const char *path, bp_err *e);

/* The same from bytes in memory; `path` names the model in messages, `base_dir` is where external
 * data lives (NULL: external data refused). */
bp_graph *bp_onnx_load_buffer(const void *buf, size_t len, const char *path, const char *base_dir, bp_err *e);

/* Rewrites SplitToSequence whose every use is SequenceAt at a constant position into Slice/Gather
 * nodes (frontend/onnx_seq.c); other sequence uses are left for bp_graph_check_ops to report.
 * bp_onnx_load calls it. */
int bp_onnx_rewrite_sequences(bp_graph *g, bp_err *e);

/* In a half-precision export (float16/bfloat16 weights, already widened to float32 by the loader),
 * Cast(to=FLOAT16|BFLOAT16) becomes Cast(to=FLOAT) and half graph outputs are declared float32, so the
 * model computes in float32 (frontend/onnx_half.c). *changed: how many casts and outputs. */
int bp_onnx_widen_half(bp_graph *g, int *changed);

/* Decodes a serialized TensorProto (an ONNX test-data .pb file) into a malloc'ed value;
 * *name receives a malloc'ed copy of its name (may be empty). Converts f16/bf16 when `to_f32`. */
int bp_tensor_pb_read(const char *path, bp_value *out, char **name, int to_f32, bp_err *e);
/* Reads .npy or an ONNX TensorProto .pb file, by extension. */
int bp_value_read_file(const char *path, bp_value *out, bp_err *e);

/* Frees a parsed Onnx__ModelProto (kept alive by the graph while tensors borrow its bytes). */
void bp_onnx_proto_free(void *proto);

#endif
