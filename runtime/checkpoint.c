/* runtime/checkpoint.c — checkpoints (--save-every K --checkpoint DIR, --resume DIR).
 *
 * One file, DIR/checkpoint.bin, written by world rank 0 from what the designated holders of the
 * parameters send it (each unique parameter once, whatever the partition), first to a temporary
 * name, flushed to disk, then renamed over the old one: a crash at any moment leaves either the
 * old or the new checkpoint whole. A barrier follows, so every rank knows the checkpoint exists
 * before the next step starts. Resuming restores the parameters, the optimizer states, the step
 * and the data position; nothing else carries state across steps (gradients are zero, dropout
 * streams derive from the step), so the resumed run continues bit-identically.
 *
 * Layout (little-endian): a 64-byte header (magic "BPCHKPT1", version, parameter count, the
 * model's fingerprint, step, data position in sequences, optimizer, states per parameter, file
 * size), the element count of each parameter (int64), then per parameter in global-id order its
 * values and its optimizer states (float32). */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC "BPCHKPT1"
#define CKPT_TAG 7

typedef struct ckpt_header {
  char magic[8];
  uint32_t version, n_params;
  uint64_t fingerprint, step, data_pos;
  uint32_t optimizer, states;
  uint64_t total_bytes;
  uint8_t reserved[8];
} ckpt_header;

static int nstates(const bp_rt *rt) { return rt->o.hp.optimizer == 1 ? 2 : 1; }

/* Floats of one parameter's record. */
static int64_t record(const bp_rt *rt, int g, int states) {
  return rt->model->param_numel[g] * (1 + (states ? nstates(rt) : 0));
}

/* One parameter's record from this rank's arenas (downloaded on a GPU). */
static int pack(bp_rt *rt, int g, int states, float *dst, bp_err *e) {
  rt_chunk *c = &rt->chunk[rt->holder_chunk[g]];
  const bp_rt_stage *st = c->st;
  int64_t off = st->tensors[st->params[rt->holder_index[g]].tensor].offset, n = rt->model->param_numel[g];
  const char *what = "reading parameters back";
  if (rt->dev->get(rt, dst, c->param + off, 4 * n, what, e) < 0 ||
      (states && rt->dev->get(rt, dst + n, c->state1 + off, 4 * n, what, e) < 0) ||
      (states && nstates(rt) == 2 && rt->dev->get(rt, dst + 2 * n, c->state2 + off, 4 * n, what, e) < 0))
    return bp_rt_err_wrap(rt, e, "parameter '%s'", rt->model->param_names[g]);
  return 0;
}

int bp_rt_gather_params(bp_rt *rt, int states, float **out, int64_t *nfloats, bp_err *e) {
  const bp_rt_model *m = rt->model;
  *out = NULL;
  *nfloats = 0;
  int64_t *at = malloc(sizeof(int64_t) * (size_t)(m->n_params + 1));
  int64_t *from = calloc((size_t)rt->W, sizeof(int64_t)); /* floats each rank sends */
  if (!at || !from) {
    free(at);
    free(from);
    return bp_rt_errf(rt, e, "out of memory");
  }
  at[0] = 0;
  for (int g = 0; g < m->n_params; g++) {
    at[g + 1] = at[g] + record(rt, g, states);
    from[rt->holder_rank[g]] += record(rt, g, states);
  }
  int rc = -1;
  float *mine = NULL, *all = NULL, **parts = NULL;
  int *reqs = NULL;
  if (!(mine = malloc(sizeof(float) * (size_t)(from[rt->wrank] + 1)))) goto oom;
  int64_t k = 0;
  for (int g = 0; g < m->n_params; g++)
    if (rt->holder_rank[g] == rt->wrank) {
      if (pack(rt, g, states, mine + k, e) < 0) goto done;
      k += record(rt, g, states);
    }
  if (rt->wrank != 0) {
    int req;
    if (from[rt->wrank] > 0) {
      if (rt->tp->impl->isend(rt->tp, 0, mine, from[rt->wrank] * 4, 0, CKPT_TAG, &req) < 0) {
        bp_rt_errf(rt, e, "%s", rt->tp->err);
        goto done;
      }
      bp_tp_why why = {"sending parameters to rank 0", -1, -1};
      if (bp_tp_wait(rt->tp, req, &why) < 0) {
        bp_rt_errf(rt, e, "%s", rt->tp->err);
        goto done;
      }
    }
    rc = 0;
    goto done;
  }
  /* rank 0: receive every holder's part, then place each record */
  if (!(all = malloc(sizeof(float) * (size_t)(at[m->n_params] + 1))) || !(parts = calloc((size_t)rt->W, sizeof(float *))) ||
      !(reqs = malloc(sizeof(int) * (size_t)rt->W)))
    goto oom;
  parts[0] = mine;
  for (int w = 1; w < rt->W; w++) {
    reqs[w] = -1;
    if (from[w] == 0) continue;
    if (!(parts[w] = malloc(sizeof(float) * (size_t)from[w]))) goto oom;
    if (rt->tp->impl->irecv(rt->tp, 0, parts[w], from[w] * 4, w, CKPT_TAG, &reqs[w]) < 0) {
      bp_rt_errf(rt, e, "%s", rt->tp->err);
      goto done;
    }
  }
  for (int w = 1; w < rt->W; w++) {
    if (reqs[w] < 0) continue;
    bp_tp_why why = {"parameters", -1, w};
    if (bp_tp_wait(rt->tp, reqs[w], &why) < 0) {
      bp_rt_errf(rt, e, "%s", rt->tp->err);
      goto done;
    }
  }
  int64_t *pos = calloc((size_t)rt->W, sizeof(int64_t));
  if (!pos) goto oom;
  for (int g = 0; g < m->n_params; g++) {
    int w = rt->holder_rank[g];
    memcpy(all + at[g], parts[w] + pos[w], sizeof(float) * (size_t)record(rt, g, states));
    pos[w] += record(rt, g, states);
  }
  free(pos);
  *out = all;
  *nfloats = at[m->n_params];
  all = NULL;
  rc = 0;
  goto done;
oom:
  bp_rt_errf(rt, e, "out of memory gathering the parameters");
done:
  for (int w = 1; parts && w < rt->W; w++) free(parts[w]);
  free(parts);
  free(reqs);
  free(mine);
  free(all);
  free(at);
  free(from);
  return rc;
}

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Waits during the file phases (gathering to rank 0, rank 0 writing) last as long as the disk
 * takes: the watchdog gets a minute plus 20 MB/s of what is written, at least its own timeout. */
double bp_rt_io_timeout(const bp_rt *rt, int states) {
  double bytes = 0;
  for (int g = 0; g < rt->model->n_params; g++) bytes += 4.0 * (double)record(rt, g, states);
  double t = 60 + bytes / 20e6;
  return t > rt->o.timeout_s ? t : rt->o.timeout_s;
}

int bp_rt_checkpoint_save(bp_rt *rt, bp_err *e) {
  float *all = NULL;
  int64_t nf = 0;
  double t0 = bp_tp_now();
  rt->tp->timeout_s = bp_rt_io_timeout(rt, 1);
  int rc0 = bp_rt_gather_params(rt, 1, &all, &nf, e);
  if (rc0 < 0) return -1;
  int rc = 0;
  if (rt->wrank == 0) {
    const bp_rt_model *m = rt->model;
    const char *dir = rt->o.checkpoint;
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    snprintf(tmp, sizeof tmp, "%s/checkpoint.bin.tmp%d", dir, (int)getpid());
    if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
      free(all);
      return bp_errf(e, "checkpoint directory '%s': %s", dir, strerror(errno));
    }
    ckpt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.version = 1;
    h.n_params = (uint32_t)m->n_params;
    h.fingerprint = m->fingerprint;
    h.step = (uint64_t)rt->step;
    h.data_pos = (uint64_t)rt->data_pos;
    h.optimizer = (uint32_t)rt->o.hp.optimizer;
    h.states = (uint32_t)nstates(rt);
    h.total_bytes = sizeof h + 8 * (uint64_t)m->n_params + 4 * (uint64_t)nf;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) rc = bp_errf(e, "checkpoint '%s': %s", tmp, strerror(errno));
    else {
      if (write_all(fd, &h, sizeof h) < 0 || write_all(fd, m->param_numel, 8 * (size_t)m->n_params) < 0 ||
          write_all(fd, all, 4 * (size_t)nf) < 0 || fsync(fd) < 0)
        rc = bp_errf(e, "checkpoint '%s': writing: %s", tmp, strerror(errno));
      if (close(fd) < 0 && rc == 0) rc = bp_errf(e, "checkpoint '%s': %s", tmp, strerror(errno));
      if (rc == 0 && rename(tmp, path) < 0) rc = bp_errf(e, "checkpoint: renaming '%s' to '%s': %s", tmp, path, strerror(errno));
      if (rc < 0) unlink(tmp);
      int dfd = open(dir, O_RDONLY | O_DIRECTORY);
      if (dfd >= 0) {
        fsync(dfd); /* the rename itself reaches the disk */
        close(dfd);
      }
    }
  }
  free(all);
  /* every rank learns whether rank 0 succeeded (and that the checkpoint is on disk) */
  double ok = rc == 0 ? 0 : 1;
  if (bp_tp_allreduce(rt->tp, 0, &ok, 1, BP_TP_F64, "the checkpoint barrier") < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
  if (ok != 0) {
    rt->err_everywhere = 1; /* rank 0 reports why */
    return rc < 0 ? rc : bp_errf(e, "rank 0 could not write the checkpoint");
  }
  bp_rt_trace_add(rt, RT_EV_CKPT, -1, -1, -1, t0, bp_tp_now());
  rt->tp->timeout_s = rt->o.timeout_s;
  return rc;
}

int bp_rt_checkpoint_load(bp_rt *rt, const char *dir, bp_err *e) {
  const bp_rt_model *m = rt->model;
  char path[4096];
  snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return bp_errf(e, "--resume: '%s': %s", path, strerror(errno));
  int rc = -1;
  int64_t *numel = NULL;
  void *tmp = NULL;
  ckpt_header h;
  struct stat sb;
  if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof h || bp_rt_read_at(fd, &h, sizeof h, 0) < 0 ||
      memcmp(h.magic, CKPT_MAGIC, 8) != 0) {
    bp_errf(e, "--resume: '%s' is not a bitpipe checkpoint", path);
    goto done;
  }
  if (h.version != 1) {
    bp_errf(e, "--resume: '%s': checkpoint format version %u, this program reads 1", path, h.version);
    goto done;
  }
  if (h.fingerprint != m->fingerprint || h.n_params != (uint32_t)m->n_params) {
    bp_errf(e, "--resume: '%s' comes from another model or compile (fingerprint %016llx, %u parameters; this program "
               "%016llx, %d parameters)", path, (unsigned long long)h.fingerprint, h.n_params,
            (unsigned long long)m->fingerprint, m->n_params);
    goto done;
  }
  if (h.optimizer != (uint32_t)rt->o.hp.optimizer || h.states != (uint32_t)nstates(rt)) {
    bp_errf(e, "--resume: '%s' holds %s state; this run uses %s (give --optimizer %s)", path,
            h.optimizer == 1 ? "AdamW" : "SGD", rt->o.hp.optimizer == 1 ? "AdamW" : "SGD", h.optimizer == 1 ? "adamw" : "sgd");
    goto done;
  }
  if ((uint64_t)sb.st_size != h.total_bytes) {
    bp_errf(e, "--resume: '%s' is truncated or damaged: %lld bytes, its header says %llu", path, (long long)sb.st_size,
            (unsigned long long)h.total_bytes);
    goto done;
  }
  if (!(numel = malloc(8 * (size_t)(m->n_params + 1))) || bp_rt_read_at(fd, numel, 8 * (int64_t)m->n_params, sizeof h) < 0) {
    bp_errf(e, "--resume: '%s': cannot read its parameter table", path);
    goto done;
  }
  int64_t expect = sizeof h + 8 * (int64_t)m->n_params;
  for (int g = 0; g < m->n_params; g++) {
    if (numel[g] != m->param_numel[g]) {
      bp_errf(e, "--resume: '%s': parameter %d ('%s') has %lld elements there, %lld here (another model)", path, g,
              m->param_names[g], (long long)numel[g], (long long)m->param_numel[g]);
      goto done;
    }
    expect += 4 * record(rt, g, 1);
  }
  if (expect != (int64_t)h.total_bytes) {
    bp_errf(e, "--resume: '%s': its size does not match its parameter table", path);
    goto done;
  }
  /* each chunk's parameters and states, from their records */
  int64_t *at = numel; /* reuse: byte offset of each record */
  int64_t off = sizeof h + 8 * (int64_t)m->n_params;
  for (int g = 0; g < m->n_params; g++) {
    int64_t r = 4 * record(rt, g, 1);
    at[g] = off;
    off += r;
  }
  int64_t most = 1;
  for (int g = 0; g < m->n_params; g++) most = m->param_numel[g] > most ? m->param_numel[g] : most;
  if (!rt->dev->host_memory && !(tmp = malloc(4 * (size_t)most))) {
    bp_errf(e, "--resume: out of memory");
    goto done;
  }
  for (int c = 0; c < rt->C; c++) {
    rt_chunk *ch = &rt->chunk[c];
    const bp_rt_stage *st = ch->st;
    for (int i = 0; i < st->nparams; i++) {
      int g = st->params[i].global_id;
      int64_t toff = st->tensors[st->params[i].tensor].offset, n = m->param_numel[g];
      uint8_t *dst[3] = {ch->param + toff, ch->state1 + toff, nstates(rt) == 2 ? ch->state2 + toff : NULL};
      for (int j = 0; j < 3 && dst[j]; j++) {
        /* device arenas: through a host buffer */
        void *to = rt->dev->host_memory ? (void *)dst[j] : tmp;
        if (bp_rt_read_at(fd, to, 4 * n, at[g] + 4 * n * j) < 0) {
          bp_errf(e, "--resume: '%s': reading parameter '%s': %s", path, m->param_names[g], strerror(errno ? errno : EIO));
          goto done;
        }
        if (!rt->dev->host_memory && rt->dev->put(rt, dst[j], tmp, 4 * n, "uploading the checkpoint", e) < 0) goto done;
      }
    }
  }
  rt->step = (long)h.step;
  rt->data_pos = (int64_t)h.data_pos;
  rc = 0;
done:
  free(numel);
  free(tmp);
  close(fd);
  return rc;
}
