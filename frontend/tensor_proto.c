/* frontend/tensor_proto.c — decoding ONNX TensorProto messages into bp_values: raw_data, the
 * typed repeated fields, and external data (mmapped from a file beside the model, which is
 * untrusted input: paths may not escape the model's folder, ranges may not pass the file's end). */
#include "frontend/tensor_proto.h"
#include "frontend/npy.h"
#include "frontend/onnx_load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int supported_storage(int32_t t) {
  return t == BP_F32 || t == BP_F64 || t == BP_F16 || t == BP_BF16 || t == BP_I64 || t == BP_I32 ||
         t == BP_I16 || t == BP_I8 || t == BP_U64 || t == BP_U32 || t == BP_U16 || t == BP_U8 ||
         t == BP_BOOL;
}

/* Converts a half-precision buffer to a new float32 buffer. */
static float *half_to_f32(const uint16_t *src, int64_t n, int bf16) {
  float *dst = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!dst) return NULL;
  for (int64_t i = 0; i < n; i++) dst[i] = bf16 ? bp_bf16_to_f32(src[i]) : bp_f16_to_f32(src[i]);
  return dst;
}

/* Maps [offset, offset+length) of `location` (relative to `base_dir`) read-only. */
static int map_external(const char *base_dir, const char *location, int64_t offset, int64_t length,
                        const char *tname, bp_tensor_mapping *m, bp_err *e) {
  if (!location || !*location)
    return bp_errf(e, "initializer '%s': external data has no 'location'", tname);
  if (location[0] == '/')
    return bp_errf(e, "initializer '%s': external data location '%s' is absolute; only paths inside the model's folder are allowed",
                   tname, location);
  for (const char *p = location; *p;) {
    const char *q = strchr(p, '/');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return bp_errf(e, "initializer '%s': external data location '%s' leaves the model's folder", tname, location);
    p += len + (q ? 1 : 0);
  }
  char path[PATH_MAX * 2], real_base[PATH_MAX], real_file[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", base_dir, location);
  if (!realpath(base_dir, real_base))
    return bp_errf(e, "initializer '%s': cannot resolve model folder '%s': %s", tname, base_dir, strerror(errno));
  if (!realpath(path, real_file))
    return bp_errf(e, "initializer '%s': external data file '%s' cannot be opened: %s", tname, path, strerror(errno));
  size_t bl = strlen(real_base);
  if (strncmp(real_file, real_base, bl) != 0 || (real_file[bl] != '/' && strcmp(real_base, "/") != 0))
    return bp_errf(e, "initializer '%s': external data location '%s' resolves to '%s', outside the model's folder '%s'",
                   tname, location, real_file, real_base);
  int fd = open(real_file, O_RDONLY);
  if (fd < 0) return bp_errf(e, "initializer '%s': cannot open external data '%s': %s", tname, real_file, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return bp_errf(e, "initializer '%s': cannot stat '%s': %s", tname, real_file, strerror(errno));
  }
  if (length < 0) length = st.st_size - offset;
  if (offset < 0 || length < 0 || offset > st.st_size || length > st.st_size - offset) {
    close(fd);
    return bp_errf(e, "initializer '%s': external data range offset %lld length %lld passes the end of '%s' (%lld bytes)",
                   tname, (long long)offset, (long long)length, real_file, (long long)st.st_size);
  }
  long page = sysconf(_SC_PAGESIZE);
  int64_t start = offset - offset % page;
  size_t maplen = (size_t)(offset - start + length);
  void *addr = maplen ? mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, start) : NULL;
  close(fd);
  if (maplen && addr == MAP_FAILED)
    return bp_errf(e, "initializer '%s': mmap of '%s' failed: %s", tname, real_file, strerror(errno));
  m->addr = addr;
  m->len = maplen;
  m->data = maplen ? (char *)addr + (offset - start) : NULL;
  m->bytes = (size_t)length;
  return 0;
}

int bp_tensor_proto_decode(const Onnx__TensorProto *tp, const char *base_dir, int to_f32, bp_value *out,
                           int *owns, bp_tensor_mapping *map, bp_err *e) {
  const char *tname = tp->name ? tp->name : "";
  memset(out, 0, sizeof *out);
  *owns = 0;
  if (map) memset(map, 0, sizeof *map);
  if (tp->n_dims > BP_MAX_RANK)
    return bp_errf(e, "tensor '%s': rank %zu exceeds the supported maximum %d", tname, tp->n_dims, BP_MAX_RANK);
  int32_t dt = tp->has_data_type ? tp->data_type : 0;
  if (!supported_storage(dt))
    return bp_errf(e, "tensor '%s': data type %d (%s) is not supported", tname, dt,
                   dt == BP_STRING ? "string" : "see TensorProto.DataType");
  out->dtype = (bp_dtype)dt;
  out->rank = (int)tp->n_dims;
  int64_t numel = 1;
  for (size_t i = 0; i < tp->n_dims; i++) {
    if (tp->dims[i] < 0) return bp_errf(e, "tensor '%s': negative dimension %lld", tname, (long long)tp->dims[i]);
    out->dims[i] = tp->dims[i];
    if (tp->dims[i] && numel > INT64_MAX / tp->dims[i])
      return bp_errf(e, "tensor '%s': element count overflows", tname);
    numel *= tp->dims[i];
  }
  size_t esz = bp_dtype_size(out->dtype);
  if (numel > (int64_t)(SIZE_MAX / 2 / esz)) return bp_errf(e, "tensor '%s': too large", tname);
  size_t bytes = (size_t)numel * esz;

  const void *src = NULL;
  int is_external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  if (is_external) {
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
      const Onnx__StringStringEntryProto *kv = tp->external_data[i];
      if (!kv->key || !kv->value) continue;
      char *end;
      if (strcmp(kv->key, "location") == 0) location = kv->value;
      else if (strcmp(kv->key, "offset") == 0 || strcmp(kv->key, "length") == 0) {
        errno = 0;
        long long x = strtoll(kv->value, &end, 10);
        if (errno || *end || x < 0)
          return bp_errf(e, "tensor '%s': external data %s '%s' is not a non-negative integer", tname, kv->key, kv->value);
        if (kv->key[0] == 'o') offset = x; else length = x;
      }
    }
    if (!base_dir) return bp_errf(e, "tensor '%s': external data outside a model file", tname);
    bp_tensor_mapping m;
    if (map_external(base_dir, location, offset, length, tname, &m, e) < 0) return -1;
    if (m.bytes != bytes) {
      if (m.addr) munmap(m.addr, m.len);
      return bp_errf(e, "tensor '%s': external data holds %zu bytes but shape and dtype need %zu", tname, m.bytes, bytes);
    }
    if (map) *map = m;
    src = m.data;
    if (((uintptr_t)src % esz) != 0 || !map) { /* unaligned (or caller keeps no mapping): copy */
      void *copy = malloc(bytes ? bytes : 1);
      if (!copy) return bp_errf(e, "tensor '%s': out of memory", tname);
      if (bytes) memcpy(copy, src, bytes);
      if (m.addr) munmap(m.addr, m.len);
      if (map) memset(map, 0, sizeof *map);
      src = copy;
      *owns = 1;
    }
  } else if (tp->has_raw_data) {
    if (tp->raw_data.len != bytes) {
      char s[160];
      return bp_errf(e, "tensor '%s': raw_data holds %zu bytes but shape %s of %s needs %zu", tname,
                     tp->raw_data.len, bp_shape_str(out, s, sizeof s), bp_dtype_name(out->dtype), bytes);
    }
    src = tp->raw_data.data;
    if (((uintptr_t)src % esz) != 0) {
      void *copy = malloc(bytes ? bytes : 1);
      if (!copy) return bp_errf(e, "tensor '%s': out of memory", tname);
      memcpy(copy, src, bytes);
      src = copy;
      *owns = 1;
    }
  } else {
    /* Typed fields: each dtype lives in the field the ONNX spec names for it. */
    size_t have;
    switch (out->dtype) {
    case BP_F32: have = tp->n_float_data; break;
    case BP_F64: have = tp->n_double_data; break;
    case BP_I64: have = tp->n_int64_data; break;
    case BP_U32: case BP_U64: have = tp->n_uint64_data; break;
    default: have = tp->n_int32_data; break;
    }
    /* Check the count before allocating: the dims are untrusted and may claim a huge tensor. */
    if ((int64_t)have != numel)
      return bp_errf(e, "tensor '%s': holds %zu values but its shape needs %lld", tname, have, (long long)numel);
    void *buf = calloc(bytes ? bytes : 1, 1);
    if (!buf) return bp_errf(e, "tensor '%s': out of memory", tname);
    for (int64_t i = 0; i < numel; i++) {
      switch (out->dtype) {
      case BP_F32: ((float *)buf)[i] = tp->float_data[i]; break;
      case BP_F64: ((double *)buf)[i] = tp->double_data[i]; break;
      case BP_I64: ((int64_t *)buf)[i] = tp->int64_data[i]; break;
      case BP_U32: ((uint32_t *)buf)[i] = (uint32_t)tp->uint64_data[i]; break;
      case BP_U64: ((uint64_t *)buf)[i] = tp->uint64_data[i]; break;
      case BP_F16: case BP_BF16: ((uint16_t *)buf)[i] = (uint16_t)tp->int32_data[i]; break;
      default: bp_set_i64(buf, out->dtype, i, tp->int32_data[i]); break;
      }
    }
    src = buf;
    *owns = 1;
  }
  if (to_f32 && (out->dtype == BP_F16 || out->dtype == BP_BF16)) {
    float *f = half_to_f32(src, numel, out->dtype == BP_BF16);
    if (*owns) free((void *)src);
    if (map && map->addr) {
      munmap(map->addr, map->len);
      memset(map, 0, sizeof *map);
    }
    if (!f) return bp_errf(e, "tensor '%s': out of memory", tname);
    src = f;
    *owns = 1;
    out->dtype = BP_F32;
  }
  out->data = (void *)src;
  return 0;
}

/* .npy or an ONNX TensorProto .pb by extension (here, not in npy.c, so npy.c needs no protobuf-c). */
int bp_value_read_file(const char *path, bp_value *out, bp_err *e) {
  size_t n = strlen(path);
  if (n > 3 && strcmp(path + n - 3, ".pb") == 0) return bp_tensor_pb_read(path, out, NULL, 1, e);
  return bp_npy_read(path, out, e);
}
