/* frontend/npy.c — NumPy .npy reader/writer (see npy.h). */
#include "frontend/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *descr;
  bp_dtype t;
} kinds[] = {
    {"<f4", BP_F32}, {"<f8", BP_F64}, {"<f2", BP_F16}, {"<i8", BP_I64}, {"<i4", BP_I32}, {"<i2", BP_I16},
    {"|i1", BP_I8},  {"<u8", BP_U64}, {"<u4", BP_U32}, {"<u2", BP_U16}, {"|u1", BP_U8},  {"|b1", BP_BOOL},
};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

int bp_npy_read(const char *path, bp_value *out, bp_err *e) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return bp_errf(e, "%s: cannot open: %s", path, strerror(errno));
  unsigned char pre[10];
  char *hdr = NULL;
  int rc = -1;
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    bp_errf(e, "%s: not a .npy file (bad magic)", path);
    goto out;
  }
  size_t hlen;
  if (pre[6] == 1) {
    if (fread(pre + 8, 1, 2, f) != 2) { bp_errf(e, "%s: truncated header", path); goto out; }
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  } else {
    unsigned char l[4];
    if (fread(l, 1, 4, f) != 4) { bp_errf(e, "%s: truncated header", path); goto out; }
    hlen = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
  }
  if (hlen > 1 << 20) { bp_errf(e, "%s: header too long", path); goto out; }
  hdr = malloc(hlen + 1);
  if (!hdr || fread(hdr, 1, hlen, f) != hlen) { bp_errf(e, "%s: truncated header", path); goto out; }
  hdr[hlen] = 0;
  char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"), *sh = strstr(hdr, "'shape'");
  if (!d || !fo || !sh) { bp_errf(e, "%s: malformed header", path); goto out; }
  char *q1 = strchr(d + 7, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
  if (!q1 || !q2 || q2 - q1 - 1 > 8) { bp_errf(e, "%s: malformed descr", path); goto out; }
  char descr[16] = {0};
  memcpy(descr, q1 + 1, (size_t)(q2 - q1 - 1));
  if (descr[0] == '=') descr[0] = '<';
  if (strcmp(descr, "<b1") == 0 || strcmp(descr, "<i1") == 0 || strcmp(descr, "<u1") == 0) descr[0] = '|';
  out->dtype = BP_UNDEF;
  for (int i = 0; i < NKINDS; i++)
    if (strcmp(kinds[i].descr, descr) == 0) out->dtype = kinds[i].t;
  if (out->dtype == BP_UNDEF) { bp_errf(e, "%s: dtype '%s' is not supported", path, descr); goto out; }
  if (strstr(fo, "True") && strstr(fo, "True") < sh) { bp_errf(e, "%s: Fortran-order arrays are not supported", path); goto out; }
  char *p = strchr(sh, '(');
  if (!p) { bp_errf(e, "%s: malformed shape", path); goto out; }
  p++;
  out->rank = 0;
  while (*p && *p != ')') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0 || out->rank >= BP_MAX_RANK) { bp_errf(e, "%s: malformed or unsupported shape", path); goto out; }
    out->dims[out->rank++] = v;
    p = end;
  }
  size_t bytes = bp_value_bytes(out);
  out->data = malloc(bytes ? bytes : 1);
  if (!out->data) { bp_errf(e, "%s: out of memory", path); goto out; }
  if (bytes && fread(out->data, 1, bytes, f) != bytes) {
    bp_errf(e, "%s: truncated data (expected %zu bytes)", path, bytes);
    free(out->data);
    out->data = NULL;
    goto out;
  }
  if (out->dtype == BP_F16) { /* compute is float32: widen on load */
    int64_t n = bp_value_numel(out);
    float *w = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!w) { bp_errf(e, "%s: out of memory", path); free(out->data); out->data = NULL; goto out; }
    for (int64_t i = 0; i < n; i++) w[i] = bp_f16_to_f32(((uint16_t *)out->data)[i]);
    free(out->data);
    out->data = w;
    out->dtype = BP_F32;
  }
  rc = 0;
out:
  free(hdr);
  fclose(f);
  return rc;
}

int bp_npy_write(const char *path, const bp_value *v, bp_err *e) {
  const char *descr = NULL;
  for (int i = 0; i < NKINDS; i++)
    if (kinds[i].t == v->dtype) descr = kinds[i].descr;
  if (!descr) return bp_errf(e, "%s: cannot write dtype %s to .npy", path, bp_dtype_name(v->dtype));
  char shape[512];
  size_t k = 0;
  for (int i = 0; i < v->rank; i++) k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld,%s", (long long)v->dims[i], i + 1 < v->rank ? " " : "");
  if (v->rank > 1) shape[k - 1] = 0; /* numpy writes "(2, 3)" but "(5,)" */
  if (v->rank == 0) shape[0] = 0;
  char hdr[1024];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  for (int i = 0; i < pad; i++) hdr[n + i] = ' ';
  hdr[n + pad] = '\n';
  int hlen = n + pad + 1;
  FILE *f = fopen(path, "wb");
  if (!f) return bp_errf(e, "%s: cannot create: %s", path, strerror(errno));
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
  size_t bytes = bp_value_bytes(v);
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)hlen, f) == (size_t)hlen &&
           (bytes == 0 || fwrite(v->data, 1, bytes, f) == bytes);
  if (fclose(f) != 0) ok = 0;
  if (!ok) return bp_errf(e, "%s: write failed: %s", path, strerror(errno));
  return 0;
}
