/* codegen/weights.c — writes the weights file (runtime/plan.h's format): the 64-byte header, then
 * each stage's PARAM arena and CONST arena exactly as the memory plan lays them out, at the
 * stage's weights_offset. A tied parameter is written into every stage that holds it. The file is
 * written under a temporary name and renamed, so a failed compile never leaves a half file. */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

static int write_arena(FILE *f, const bp_cg_stage *st, int mem, int64_t size, bp_err *e) {
  uint8_t *buf = calloc((size_t)size + 1, 1);
  if (!buf) return bp_errf(e, "out of memory (%lld bytes for stage %d's weights)", (long long)size, st->index);
  for (int t = 0; t < st->g->ntensors; t++) {
    const bp_tensor *tt = st->g->tensors[t];
    if (st->mem[t] != mem || !st->nbytes[t] || tt->kind == BP_T_ACTIVATION) continue; /* a view shares its root's bytes */
    if (!tt->v.data) {
      free(buf);
      return bp_errf(e, "internal: stage %d tensor '%s' has no data to write", st->index, tt->name);
    }
    memcpy(buf + st->offset[t], tt->v.data, (size_t)st->nbytes[t]);
  }
  size_t k = fwrite(buf, 1, (size_t)size, f);
  free(buf);
  return k == (size_t)size ? 0 : -1;
}

int bp_cg_write_weights(const bp_cg *cg, const char *path, bp_err *e) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return bp_errf(e, "%s: cannot open for writing", tmp);
  bp_rt_weights_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, BP_RT_WEIGHTS_MAGIC, 8);
  h.version = BP_RT_WEIGHTS_VERSION;
  h.n_stages = (uint32_t)cg->S;
  h.fingerprint = cg->fingerprint;
  h.total_bytes = (uint64_t)cg->weights_bytes;
  int rc = fwrite(&h, sizeof h, 1, f) == 1 ? 0 : -1;
  int64_t pos = (int64_t)sizeof h;
  for (int s = 0; s < cg->S && rc == 0; s++) {
    const bp_cg_stage *st = &cg->stages[s];
    for (; pos < st->weights_offset && rc == 0; pos++) rc = fputc(0, f) == EOF ? -1 : 0; /* alignment padding */
    if (rc == 0) rc = write_arena(f, st, BP_MEM_PARAM, st->param_bytes, e);
    if (rc == 0) rc = write_arena(f, st, BP_MEM_CONST, st->const_bytes, e);
    pos += st->param_bytes + st->const_bytes;
  }
  if (rc == 0 && pos != cg->weights_bytes) rc = bp_errf(e, "internal: weights file size %lld, planned %lld", (long long)pos,
                                                        (long long)cg->weights_bytes);
  if (fclose(f) != 0 && rc == 0) rc = -1;
  if (rc == 0 && rename(tmp, path) != 0) rc = bp_errf(e, "%s: cannot rename to %s", tmp, path);
  if (rc) {
    remove(tmp);
    return e->set ? -1 : bp_errf(e, "%s: write error (disk full?)", path);
  }
  return 0;
}
