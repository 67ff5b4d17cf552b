/* kernels/value.c — dtype facts, element access by dtype, half-precision conversion, broadcasting
 * and error formatting: the helpers every layer (frontend, kernels, runtime) shares. */
#include "frontend/ir.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bp_errf(bp_err *e, const char *fmt, ...) {
  if (e && !e->set) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->set = 1;
  }
  return -1;
}

size_t bp_dtype_size(bp_dtype t) {
  switch (t) {
  case BP_F32: case BP_I32: case BP_U32: return 4;
  case BP_F64: case BP_I64: case BP_U64: return 8;
  case BP_F16: case BP_BF16: case BP_I16: case BP_U16: return 2;
  case BP_I8: case BP_U8: case BP_BOOL: return 1;
  default: return 0;
  }
}

const char *bp_dtype_name(bp_dtype t) {
  switch (t) {
  case BP_F32: return "float32";
  case BP_F64: return "float64";
  case BP_F16: return "float16";
  case BP_BF16: return "bfloat16";
  case BP_I64: return "int64";
  case BP_I32: return "int32";
  case BP_I16: return "int16";
  case BP_I8: return "int8";
  case BP_U64: return "uint64";
  case BP_U32: return "uint32";
  case BP_U16: return "uint16";
  case BP_U8: return "uint8";
  case BP_BOOL: return "bool";
  case BP_STRING: return "string";
  default: return "undefined";
  }
}

int bp_dtype_is_float(bp_dtype t) { return t == BP_F32 || t == BP_F64 || t == BP_F16 || t == BP_BF16; }
int bp_dtype_is_int(bp_dtype t) {
  return t == BP_I64 || t == BP_I32 || t == BP_I16 || t == BP_I8 || t == BP_U64 || t == BP_U32 ||
         t == BP_U16 || t == BP_U8;
}

/* Saturates at INT64_MAX / SIZE_MAX: shapes come from untrusted files, and a saturated size is
 * then refused by the allocation or size checks instead of wrapping to a small number. */
int64_t bp_value_numel(const bp_value *v) {
  int64_t n = 1;
  for (int i = 0; i < v->rank; i++) {
    if (v->dims[i] <= 0) return v->dims[i] == 0 ? 0 : -1; /* -1: unknown dimension */
    if (__builtin_mul_overflow(n, v->dims[i], &n)) return INT64_MAX;
  }
  return n;
}

size_t bp_value_bytes(const bp_value *v) {
  size_t b;
  if (__builtin_mul_overflow((size_t)bp_value_numel(v), bp_dtype_size(v->dtype), &b)) return SIZE_MAX;
  return b;
}

const char *bp_shape_str(const bp_value *v, char *buf, size_t n) {
  size_t k = 0;
  if (v->rank < 0) {
    snprintf(buf, n, "[?]");
    return buf;
  }
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < v->rank && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)v->dims[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

int bp_same_shape(const bp_value *a, const bp_value *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return 0;
  return 1;
}

/* ---- half precision ---- */
float bp_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: renormalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t bp_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* carry into exponent is correct */
  return (uint16_t)half;
}

float bp_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t bp_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

/* ---- element access ---- */
double bp_get_f64(const void *d, bp_dtype t, int64_t i) {
  switch (t) {
  case BP_F32: return ((const float *)d)[i];
  case BP_F64: return ((const double *)d)[i];
  case BP_F16: return bp_f16_to_f32(((const uint16_t *)d)[i]);
  case BP_BF16: return bp_bf16_to_f32(((const uint16_t *)d)[i]);
  case BP_I64: return (double)((const int64_t *)d)[i];
  case BP_I32: return ((const int32_t *)d)[i];
  case BP_I16: return ((const int16_t *)d)[i];
  case BP_I8: return ((const int8_t *)d)[i];
  case BP_U64: return (double)((const uint64_t *)d)[i];
  case BP_U32: return ((const uint32_t *)d)[i];
  case BP_U16: return ((const uint16_t *)d)[i];
  case BP_U8: return ((const uint8_t *)d)[i];
  case BP_BOOL: return ((const uint8_t *)d)[i] ? 1.0 : 0.0;
  default: return 0;
  }
}

void bp_set_f64(void *d, bp_dtype t, int64_t i, double x) {
  switch (t) {
  case BP_F32: ((float *)d)[i] = (float)x; break;
  case BP_F64: ((double *)d)[i] = x; break;
  case BP_F16: ((uint16_t *)d)[i] = bp_f32_to_f16((float)x); break;
  case BP_BF16: ((uint16_t *)d)[i] = bp_f32_to_bf16((float)x); break;
  /* float -> integer conversion truncates toward zero (C and ONNX Cast semantics); out-of-range
   * values are saturated first so the conversion is defined behaviour. */
  case BP_I64: ((int64_t *)d)[i] = isnan(x) ? 0 : x >= 9.2233720368547758e18 ? INT64_MAX : x <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)x; break;
  case BP_I32: ((int32_t *)d)[i] = isnan(x) ? 0 : x >= 2147483647.0 ? INT32_MAX : x <= -2147483648.0 ? INT32_MIN : (int32_t)x; break;
  case BP_I16: ((int16_t *)d)[i] = (int16_t)(isnan(x) ? 0 : x >= 32767 ? 32767 : x <= -32768 ? -32768 : (int)x); break;
  case BP_I8: ((int8_t *)d)[i] = (int8_t)(isnan(x) ? 0 : x >= 127 ? 127 : x <= -128 ? -128 : (int)x); break;
  case BP_U64: ((uint64_t *)d)[i] = !(x > 0) ? 0 : x >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)x; break;
  case BP_U32: ((uint32_t *)d)[i] = !(x > 0) ? 0 : x >= 4294967295.0 ? UINT32_MAX : (uint32_t)x; break;
  case BP_U16: ((uint16_t *)d)[i] = (uint16_t)(!(x > 0) ? 0 : x >= 65535 ? 65535 : (unsigned)x); break;
  case BP_U8: ((uint8_t *)d)[i] = (uint8_t)(!(x > 0) ? 0 : x >= 255 ? 255 : (unsigned)x); break;
  case BP_BOOL: ((uint8_t *)d)[i] = x != 0; break;
  default: break;
  }
}

int64_t bp_get_i64(const void *d, bp_dtype t, int64_t i) {
  switch (t) {
  case BP_I64: return ((const int64_t *)d)[i];
  case BP_I32: return ((const int32_t *)d)[i];
  case BP_I16: return ((const int16_t *)d)[i];
  case BP_I8: return ((const int8_t *)d)[i];
  case BP_U64: return (int64_t)((const uint64_t *)d)[i];
  case BP_U32: return ((const uint32_t *)d)[i];
  case BP_U16: return ((const uint16_t *)d)[i];
  case BP_U8: case BP_BOOL: return ((const uint8_t *)d)[i];
  default: {
    double x = bp_get_f64(d, t, i);
    return isnan(x) ? 0 : x >= 9.2233720368547758e18 ? INT64_MAX : x <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)x;
  }
  }
}

void bp_set_i64(void *d, bp_dtype t, int64_t i, int64_t x) {
  switch (t) {
  case BP_I64: ((int64_t *)d)[i] = x; break;
  case BP_I32: ((int32_t *)d)[i] = (int32_t)x; break; /* wraps like a C cast of two's complement */
  case BP_I16: ((int16_t *)d)[i] = (int16_t)x; break;
  case BP_I8: ((int8_t *)d)[i] = (int8_t)x; break;
  case BP_U64: ((uint64_t *)d)[i] = (uint64_t)x; break;
  case BP_U32: ((uint32_t *)d)[i] = (uint32_t)x; break;
  case BP_U16: ((uint16_t *)d)[i] = (uint16_t)x; break;
  case BP_U8: ((uint8_t *)d)[i] = (uint8_t)x; break;
  case BP_BOOL: ((uint8_t *)d)[i] = x != 0; break;
  default: bp_set_f64(d, t, i, (double)x); break;
  }
}

/* ---- broadcasting ---- */
int bp_broadcast_shape(const bp_value *a, const bp_value *b, bp_value *out, const char *who, bp_err *e) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  int64_t dims[BP_MAX_RANK];
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->rank), ib = i - (r - b->rank);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da == db || db == 1) dims[i] = da;
    else if (da == 1) dims[i] = db;
    else {
      char s1[128], s2[128];
      return bp_errf(e, "%s: shapes %s and %s cannot be broadcast", who, bp_shape_str(a, s1, sizeof s1),
                     bp_shape_str(b, s2, sizeof s2));
    }
  }
  out->rank = r;
  memcpy(out->dims, dims, sizeof(int64_t) * (size_t)r);
  return 0;
}

void bp_broadcast_strides(const bp_value *in, const bp_value *out, int64_t *strides) {
  int64_t s = 1;
  for (int i = out->rank - 1; i >= 0; i--) {
    int j = i - (out->rank - in->rank);
    if (j < 0) {
      strides[i] = 0;
      continue;
    }
    strides[i] = in->dims[j] == 1 ? 0 : s;
    s *= in->dims[j];
  }
}

int bp_norm_axis(int64_t axis, int rank, int64_t *out, const char *who, bp_err *e) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= (rank > 0 ? rank : 1))
    return bp_errf(e, "%s: axis %lld is out of range for rank %d", who, (long long)axis, rank);
  *out = a;
  return 0;
}

int bp_err_prefix_node(bp_err *e, const bp_node *n) {
  if (!e || !e->set || (n->name[0] && strstr(e->msg, n->name))) return -1;
  char m[sizeof e->msg];
  memcpy(m, e->msg, sizeof m);
  int k = snprintf(e->msg, sizeof e->msg, "node '%s' (%s): ", n->name, n->op_type);
  if (k < 0 || (size_t)k >= sizeof e->msg) return -1;
  size_t room = sizeof e->msg - (size_t)k - 1, len = strnlen(m, room);
  memcpy(e->msg + k, m, len); /* the original message, cut to what fits */
  e->msg[(size_t)k + len] = 0;
  return -1;
}
