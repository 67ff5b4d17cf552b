/* frontend/npy.h — reading and writing NumPy .npy files (format 1.0/2.0/3.0, little-endian,
 * C order), the exchange format of `bitpipec run` and the tests. */
#ifndef BITPIPE_NPY_H
#define BITPIPE_NPY_H

#include "frontend/ir.h"

/* Reads FILE into a malloc'ed value. Refuses Fortran order, big-endian and unsupported dtypes. */
int bp_npy_read(const char *path, bp_value *out, bp_err *e);
int bp_npy_write(const char *path, const bp_value *v, bp_err *e);
/* .npy or .pb by extension: bp_value_read_file in frontend/onnx_load.h (needs protobuf-c). */

#endif
