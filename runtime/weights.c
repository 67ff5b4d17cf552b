/* runtime/weights.c — reads the compiler's weights file (runtime/plan.h: a 64-byte header, then
 * each stage's PARAM bytes and CONST bytes at its weights_offset) into this rank's chunk arenas.
 * A file from another compile (fingerprint), of another format, or shorter than the header says
 * is refused with one line naming the file. On a GPU the bytes go through the host to the device
 * arenas, and the CONST bytes also stay on the host (cnst_host). */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *bp_rt_default_weights(const bp_rt_model *m, char *buf, size_t n) {
  const char *w = m->weights_file ? m->weights_file : "train.weights";
  if (w[0] == '/') return w;
  /* next to the program: the directory of /proc/self/exe */
  char exe[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k <= 0) return w;
  exe[k] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return w;
  *slash = 0;
  snprintf(buf, n, "%s/%s", exe, w);
  return buf;
}

/* The weights file and checkpoints are read with it (declared in runtime/rt.h). */
int bp_rt_read_at(int fd, void *dst, int64_t n, int64_t off) {
  uint8_t *p = dst;
  while (n > 0) {
    ssize_t k = pread(fd, p, (size_t)(n > (1 << 30) ? (1 << 30) : n), (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= k;
    off += k;
  }
  return 0;
}

int bp_rt_weights_load(bp_rt *rt, const char *path, bp_err *e) {
  const bp_rt_model *m = rt->model;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return bp_errf(e, "weights file '%s': %s (give it with --weights FILE)", path, strerror(errno));
  struct stat sb;
  bp_rt_weights_header h;
  int rc = -1;
  if (fstat(fd, &sb) < 0) {
    bp_errf(e, "weights file '%s': %s", path, strerror(errno));
    goto done;
  }
  if (sb.st_size < (off_t)sizeof h || bp_rt_read_at(fd, &h, sizeof h, 0) < 0) {
    bp_errf(e, "weights file '%s': %lld bytes, shorter than its %zu-byte header", path, (long long)sb.st_size,
               sizeof h);
    goto done;
  }
  if (memcmp(h.magic, BP_RT_WEIGHTS_MAGIC, 8) != 0) {
    bp_errf(e, "weights file '%s' is not a bitpipe weights file (bad magic)", path);
    goto done;
  }
  if (h.version != BP_RT_WEIGHTS_VERSION) {
    bp_errf(e, "weights file '%s': format version %u, this program reads %d", path, h.version,
               BP_RT_WEIGHTS_VERSION);
    goto done;
  }
  if (h.fingerprint != m->fingerprint || (int)h.n_stages != m->n_stages) {
    bp_errf(e, "weights file '%s' belongs to another compile (fingerprint %016llx, %u stages; this program "
                      "%016llx, %d stages)", path, (unsigned long long)h.fingerprint, h.n_stages,
               (unsigned long long)m->fingerprint, m->n_stages);
    goto done;
  }
  if ((uint64_t)sb.st_size != h.total_bytes) {
    bp_errf(e, "weights file '%s' is %s: %lld bytes, its header says %llu", path,
               (uint64_t)sb.st_size < h.total_bytes ? "truncated" : "longer than written", (long long)sb.st_size,
               (unsigned long long)h.total_bytes);
    goto done;
  }
  for (int c = 0; c < rt->C; c++) {
    const bp_rt_stage *st = rt->chunk[c].st;
    int64_t off = st->weights_offset, need = st->param_bytes + st->const_bytes;
    if (off < (int64_t)sizeof h || off + need > (int64_t)h.total_bytes) {
      bp_errf(e, "weights file '%s': stage %d's %lld bytes at offset %lld lie outside the file (%llu bytes)",
                 path, st->index, (long long)need, (long long)off, (unsigned long long)h.total_bytes);
      goto done;
    }
    rt_chunk *ch = &rt->chunk[c];
    if (rt->dev->host_memory) {
      if (bp_rt_read_at(fd, ch->param, st->param_bytes, off) < 0 || bp_rt_read_at(fd, ch->cnst, st->const_bytes, off + st->param_bytes) < 0) {
        bp_errf(e, "weights file '%s': reading stage %d: %s", path, st->index, strerror(errno ? errno : EIO));
        goto done;
      }
      continue;
    }
    /* device arenas: through the host (the constants stay there too, for the kernels' host views) */
    void *tmp = malloc((size_t)(st->param_bytes > 0 ? st->param_bytes : 1));
    if (!tmp) {
      bp_errf(e, "out of memory reading stage %d of the weights file", st->index);
      goto done;
    }
    if (bp_rt_read_at(fd, tmp, st->param_bytes, off) < 0 || bp_rt_read_at(fd, ch->cnst_host, st->const_bytes, off + st->param_bytes) < 0) {
      bp_errf(e, "weights file '%s': reading stage %d: %s", path, st->index, strerror(errno ? errno : EIO));
      free(tmp);
      goto done;
    }
    int up = rt->dev->put(rt, ch->param, tmp, st->param_bytes, "uploading the weights", e) < 0 ||
             rt->dev->put(rt, ch->cnst, ch->cnst_host, st->const_bytes, "uploading the constants", e) < 0 ||
             rt->dev->sync(rt, "uploading the weights", e) < 0;
    free(tmp);
    if (up) goto done;
  }
  rc = 0;
done:
  close(fd);
  return rc;
}
