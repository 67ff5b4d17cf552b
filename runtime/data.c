/* runtime/data.c — what the stages' data inputs receive.
 *
 * Token files (--data FILE): llm.c's format, a header of 256 little-endian int32 (magic 20240520,
 * version 1, token count) and then uint16 tokens. The stream is cut into windows of T+1 tokens
 * at stride T (window w holds tokens [w*T, w*T+T]); a sequence's input is the first T tokens of
 * its window, its targets the last T. Each epoch visits the windows in a permutation drawn from
 * --seed and the epoch number (Fisher-Yates on splitmix64), so the order is deterministic and the
 * data position (sequences consumed) is all a checkpoint needs to continue it. A step consumes
 * N*R*B sequences: sample g of the step (replica q's micro-batch m reads g = q*N + mb_sample[m])
 * takes sequences pos + g*B .. pos + g*B + B-1.
 *
 * Fixed batches (--input NAME=FILE ... --targets FILE, .npy as for `bitpipec train`): every step
 * sees the same N*R*B sequences, split along dimension 0: sample g reads rows [g*B, g*B + B). */
#include "runtime/rt.h"
#include "frontend/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKENS_MAGIC 20240520
#define TOKENS_HEADER_BYTES 1024

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The window holding sequence `seq` of the stream (its epoch's permutation, cached). */
static int64_t window_of(bp_rt_data *d, int64_t seq, bp_err *e) {
  int64_t epoch = seq / d->nwin, i = seq % d->nwin;
  int k = d->perm[0] && d->perm_epoch[0] == epoch ? 0 : d->perm[1] && d->perm_epoch[1] == epoch ? 1 : -1;
  if (k < 0) {
    k = d->perm[0] && d->perm[1] ? (d->perm_epoch[0] < d->perm_epoch[1] ? 0 : 1) : (d->perm[0] ? 1 : 0);
    if (!d->perm[k] && !(d->perm[k] = malloc(sizeof(uint32_t) * (size_t)d->nwin))) {
      bp_errf(e, "out of memory for the data order (%lld windows)", (long long)d->nwin);
      return -1;
    }
    uint32_t *p = d->perm[k];
    for (int64_t w = 0; w < d->nwin; w++) p[w] = (uint32_t)w;
    uint64_t s = mix(d->seed ^ mix((uint64_t)epoch + 0x5eed));
    for (int64_t w = d->nwin - 1; w > 0; w--) {
      s = mix(s);
      int64_t j = (int64_t)(s % (uint64_t)(w + 1));
      uint32_t t = p[w];
      p[w] = p[j];
      p[j] = t;
    }
    d->perm_epoch[k] = epoch;
  }
  return d->perm[k][i];
}

static int open_tokens(bp_rt_data *d, const char *path, bp_err *e) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return bp_errf(e, "data file '%s': %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) < 0) {
    close(fd);
    return bp_errf(e, "data file '%s': %s", path, strerror(errno));
  }
  if (sb.st_size < TOKENS_HEADER_BYTES) {
    close(fd);
    return bp_errf(e, "data file '%s': %lld bytes, shorter than the 1024-byte header of a token file", path,
                   (long long)sb.st_size);
  }
  void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return bp_errf(e, "data file '%s': mmap: %s", path, strerror(errno));
  d->map = map;
  d->map_len = (size_t)sb.st_size;
  const int32_t *h = map;
  if (h[0] != TOKENS_MAGIC || h[1] != 1)
    return bp_errf(e, "data file '%s' is not a token file (llm.c format: magic %d, version 1; found %d, %d)", path,
                   TOKENS_MAGIC, h[0], h[1]);
  d->ntok = h[2];
  if (d->ntok < 0 || (int64_t)sb.st_size < TOKENS_HEADER_BYTES + 2 * d->ntok)
    return bp_errf(e, "data file '%s' is truncated: its header says %lld tokens (%lld bytes), the file has %lld bytes",
                   path, (long long)d->ntok, (long long)(TOKENS_HEADER_BYTES + 2 * d->ntok), (long long)sb.st_size);
  d->tok = (const uint16_t *)((const char *)map + TOKENS_HEADER_BYTES);
  d->nwin = d->ntok > 0 ? (d->ntok - 1) / d->T : 0;
  if (d->nwin < d->per_step)
    return bp_errf(e, "data file '%s' is too short: %lld tokens make %lld windows of %d+1 tokens, and one step needs %lld "
                      "sequences (N=%d micro-batches x R=%d replicas x B=%d)", path, (long long)d->ntok,
                   (long long)d->nwin, d->T, (long long)d->per_step, d->N, d->R, d->B);
  if (d->nwin > UINT32_MAX) return bp_errf(e, "data file '%s': more than 2^32 windows", path);
  if (d->vocab > 0)
    for (int64_t i = 0; i < d->ntok; i++)
      if (d->tok[i] >= d->vocab)
        return bp_errf(e, "data file '%s': token %d at position %lld is outside the model's vocabulary of %d", path,
                       d->tok[i], (long long)i, d->vocab);
  return 0;
}

/* The fixed value given for input `name`, or NULL. */
static bp_value *fixed_of(bp_rt_data *d, const char *name, const char **file) {
  for (int i = 0; i < d->nfixed; i++)
    if (strcmp(d->fixed_name[i], name) == 0) {
      if (file) *file = d->fixed_file[i];
      return &d->fixed[i];
    }
  return NULL;
}

static int check_fixed(bp_rt_data *d, const char *name, const char *file, const bp_value *v, const bp_rt_tensor *t,
                       bp_err *e) {
  char have[160], want[160];
  bp_value w = {(bp_dtype)t->dtype, t->rank, {0}, NULL};
  for (int k = 0; k < t->rank; k++) w.dims[k] = t->dims[k];
  if (t->rank >= 1) w.dims[0] = t->dims[0] * (int64_t)d->N * d->R;
  int ok = v->rank == w.rank && (v->dtype == w.dtype || (bp_dtype_is_int(v->dtype) && bp_dtype_is_int(w.dtype)));
  for (int k = 0; ok && k < w.rank; k++) ok = v->dims[k] == w.dims[k];
  if (t->rank < 1 || t->dims[0] != d->B) ok = 0;
  if (!ok)
    return bp_errf(e, "%s '%s': %s %s, but one step needs %s %s (N=%d micro-batches x R=%d replicas x B=%d rows of "
                      "the model's input '%s')", strcmp(name, "targets") ? "--input" : "--targets", file,
                   bp_dtype_name(v->dtype), bp_shape_str(v, have, sizeof have), bp_dtype_name(w.dtype),
                   bp_shape_str(&w, want, sizeof want), d->N, d->R, d->B, name);
  return 0;
}

int bp_rt_data_open(bp_rt *rt, bp_err *e) {
  bp_rt_data *d = &rt->data;
  const bp_rt_model *m = rt->model;
  memset(d, 0, sizeof *d);
  d->B = m->batch;
  d->T = m->seq;
  d->N = rt->N;
  d->R = rt->R;
  d->vocab = m->vocab;
  d->loss_kind = m->loss_kind;
  d->ignore_index = m->ignore_index;
  d->seed = rt->o.hp.seed;
  d->per_step = (int64_t)d->N * d->R * d->B;
  d->mode = rt->o.data ? 0 : 1;
  if (d->B < 1) return bp_errf(e, "plan: micro-batch size %d", d->B);
  if (rt->o.data && rt->o.targets)
    return bp_errf(e, "--targets goes with --input (a fixed batch); --data gives the targets itself");
  /* every --input must name a data input of the model */
  for (int i = 0; i < rt->o.ninputs; i++) {
    int found = 0;
    for (int s = 0; s < m->n_stages && !found; s++)
      for (int k = 0; k < m->stages[s].n_data; k++)
        found |= m->stages[s].data[k].kind != BP_DATA_TARGETS && m->stages[s].data[k].input_name &&
                 strcmp(m->stages[s].data[k].input_name, rt->o.input_name[i]) == 0;
    if (!found) {
      char names[512] = "";
      for (int s = 0; s < m->n_stages; s++)
        for (int k = 0; k < m->stages[s].n_data; k++)
          if (m->stages[s].data[k].kind != BP_DATA_TARGETS && strlen(names) + 64 < sizeof names)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "",
                     m->stages[s].data[k].input_name);
      return bp_errf(e, "--input %s: the model has no such input (its inputs: %s)", rt->o.input_name[i], names);
    }
  }
  if (d->mode == 0) {
    if (open_tokens(d, rt->o.data, e) < 0) return -1;
    d->path = rt->o.data;
  }
  /* load and check what every data input of every stage needs (targets on every rank: the loss
   * weights count them) */
  for (int s = 0; s < m->n_stages; s++) {
    const bp_rt_stage *st = &m->stages[s];
    int mine = 0;
    for (int c = 0; c < rt->C; c++) mine |= rt->chunk[c].stage == s;
    for (int k = 0; k < st->n_data; k++) {
      const bp_rt_data_input *in = &st->data[k];
      const bp_rt_tensor *t = &st->tensors[in->tensor];
      int stream = d->mode == 0 && in->kind != BP_DATA_FIXED;
      if (stream) {
        if (t->rank != 2 || t->dims[0] != d->B || t->dims[1] != d->T || !bp_dtype_is_int((bp_dtype)t->dtype))
          return bp_errf(e, "--data: the model's input '%s' is not integer [%d, %d] tokens (a token file feeds "
                                   "token models; give --input/--targets instead)", in->input_name, d->B, d->T);
        continue;
      }
      const char *name = in->kind == BP_DATA_TARGETS ? "targets" : in->input_name;
      if (!mine && in->kind != BP_DATA_TARGETS) continue;
      const char *file = NULL;
      if (fixed_of(d, name, NULL)) continue;
      if (in->kind == BP_DATA_TARGETS) file = rt->o.targets;
      for (int i = 0; in->kind != BP_DATA_TARGETS && i < rt->o.ninputs; i++)
        if (strcmp(rt->o.input_name[i], name) == 0) file = rt->o.input_file[i];
      if (!file) {
        if (in->kind == BP_DATA_TARGETS)
          return bp_errf(e, "--targets FILE is required with --input (a fixed batch; or give --data FILE)");
        return bp_errf(e, "input '%s' was not given (use --input %s=FILE%s)", name, name,
                          d->mode == 1 ? ", or --data FILE for token inputs" : "");
      }
      if (d->nfixed >= BP_RT_MAX_INPUTS + 1) return bp_errf(e, "too many data inputs");
      bp_value *v = &d->fixed[d->nfixed];
      if (bp_npy_read(file, v, e) < 0) return -1;
      d->fixed_name[d->nfixed] = name;
      d->fixed_file[d->nfixed] = file;
      d->nfixed++;
      if (check_fixed(d, name, file, v, t, e) < 0) return -1;
      if (in->kind == BP_DATA_TARGETS && d->loss_kind == 0) {
        int64_t n = bp_value_numel(v);
        for (int64_t i = 0; i < n; i++) {
          int64_t x = bp_get_i64(v->data, v->dtype, i);
          if (x != d->ignore_index && (x < 0 || (d->vocab > 0 && x >= d->vocab)))
            return bp_errf(e, "--targets '%s': value %lld at position %lld is outside the %d classes and is not the "
                                     "ignore index %lld", file, (long long)x, (long long)i, d->vocab,
                              (long long)d->ignore_index);
        }
      }
    }
  }
  return 0;
}

void bp_rt_data_close(bp_rt_data *d) {
  if (d->map) munmap(d->map, d->map_len);
  d->map = NULL;
  free(d->perm[0]);
  free(d->perm[1]);
  d->perm[0] = d->perm[1] = NULL;
  for (int i = 0; i < d->nfixed; i++) free(d->fixed[i].data);
  d->nfixed = 0;
}

int bp_rt_data_fill(bp_rt_data *d, int64_t pos, int sample, const bp_rt_data_input *in, const bp_rt_tensor *t,
                    void *dst, bp_err *e) {
  if (d->mode == 0 && in->kind != BP_DATA_FIXED) {
    int shift = in->kind == BP_DATA_TARGETS;
    for (int b = 0; b < d->B; b++) {
      int64_t w = window_of(d, pos + (int64_t)sample * d->B + b, e);
      if (w < 0) return -1;
      const uint16_t *src = d->tok + w * d->T + shift;
      if (t->dtype == BP_I64) {
        int64_t *o = (int64_t *)dst + (int64_t)b * d->T;
        for (int j = 0; j < d->T; j++) o[j] = src[j];
      } else
        for (int j = 0; j < d->T; j++) bp_set_i64(dst, (bp_dtype)t->dtype, (int64_t)b * d->T + j, src[j]);
    }
    return 0;
  }
  const char *name = in->kind == BP_DATA_TARGETS ? "targets" : in->input_name;
  const bp_value *v = fixed_of(d, name, NULL);
  if (!v) return bp_errf(e, "internal: no data loaded for input '%s'", name);
  int64_t per = t->nbytes / (int64_t)bp_dtype_size((bp_dtype)t->dtype); /* elements of one sample */
  int64_t first = (int64_t)sample * per;
  if (v->dtype == (bp_dtype)t->dtype)
    memcpy(dst, (const char *)v->data + first * (int64_t)bp_dtype_size(v->dtype), (size_t)t->nbytes);
  else
    for (int64_t i = 0; i < per; i++) bp_set_i64(dst, (bp_dtype)t->dtype, i, bp_get_i64(v->data, v->dtype, first + i));
  return 0;
}

int bp_rt_data_count(bp_rt_data *d, int64_t pos, int sample, int64_t *count, bp_err *e) {
  if (d->mode == 0) {
    /* token targets: B*T of them, minus those equal to the ignore index (only when it is a token) */
    int64_t n = (int64_t)d->B * d->T;
    if (d->loss_kind == 0 && d->ignore_index >= 0 && d->ignore_index < 65536)
      for (int b = 0; b < d->B; b++) {
        int64_t w = window_of(d, pos + (int64_t)sample * d->B + b, e);
        if (w < 0) return -1;
        for (int j = 1; j <= d->T; j++) n -= d->tok[w * d->T + j] == d->ignore_index;
      }
    *count = n;
    return 0;
  }
  const bp_value *v = fixed_of(d, "targets", NULL);
  if (!v) return bp_errf(e, "internal: no targets loaded");
  int64_t per = bp_value_numel(v) / ((int64_t)d->N * d->R), n = 0;
  if (d->loss_kind != 0) n = per;
  else
    for (int64_t i = (int64_t)sample * per; i < (int64_t)(sample + 1) * per; i++)
      n += bp_get_i64(v->data, v->dtype, i) != d->ignore_index;
  *count = n;
  return 0;
}
