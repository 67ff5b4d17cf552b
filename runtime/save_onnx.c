/* runtime/save_onnx.c — --save-onnx FILE: the trained weights written back into a copy of the
 * ONNX model the program was compiled from. The compiler recorded, per parameter, the byte offset
 * of its initializer's raw_data in that file (param_onnx_offset), so no protobuf is parsed here:
 * world rank 0 gathers the parameters from their holders, copies the model to a temporary file,
 * overwrites each parameter's bytes in place and renames the copy to FILE. */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_file(const char *from, const char *to, bp_err *e) {
  int in = open(from, O_RDONLY);
  if (in < 0) return bp_errf(e, "--save-onnx: the compiled model '%s': %s", from, strerror(errno));
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (out < 0) {
    close(in);
    return bp_errf(e, "--save-onnx: '%s': %s", to, strerror(errno));
  }
  char buf[1 << 16];
  ssize_t k;
  int rc = 0;
  while ((k = read(in, buf, sizeof buf)) != 0) {
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 || write(out, buf, (size_t)k) != k) {
      rc = bp_errf(e, "--save-onnx: copying '%s' to '%s': %s", from, to, strerror(errno ? errno : EIO));
      break;
    }
  }
  close(in);
  if (close(out) < 0 && rc == 0) rc = bp_errf(e, "--save-onnx: '%s': %s", to, strerror(errno));
  return rc;
}

int bp_rt_save_onnx(bp_rt *rt, const char *path, bp_err *e) {
  const bp_rt_model *m = rt->model;
  float *all = NULL;
  int64_t nf = 0;
  if (bp_rt_gather_params(rt, 0, &all, &nf, e) < 0) return -1;
  if (rt->wrank != 0) return 0;
  int rc = 0, skipped = 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  if (!m->model_path || !m->param_onnx_offset) {
    free(all);
    return bp_errf(e, "--save-onnx: this program was compiled without the model's parameter offsets");
  }
  if (copy_file(m->model_path, tmp, e) < 0) {
    unlink(tmp);
    free(all);
    return -1;
  }
  int fd = open(tmp, O_RDWR);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) < 0) rc = bp_errf(e, "--save-onnx: '%s': %s", tmp, strerror(errno));
  int64_t at = 0;
  for (int g = 0; rc == 0 && g < m->n_params; g++) {
    int64_t off = m->param_onnx_offset[g], bytes = 4 * m->param_numel[g];
    if (off < 0) {
      if (!rt->o.quiet) fprintf(stderr, "train: --save-onnx: parameter '%s' has no raw_data in '%s'; left as it was\n",
                                m->param_names[g], m->model_path);
      skipped++;
    } else if (off + bytes > (int64_t)sb.st_size)
      rc = bp_errf(e, "--save-onnx: parameter '%s' at offset %lld lies beyond the end of '%s' (%lld bytes): the model "
                      "changed since it was compiled", m->param_names[g], (long long)off, m->model_path,
                   (long long)sb.st_size);
    else if (pwrite(fd, all + at, (size_t)bytes, (off_t)off) != bytes)
      rc = bp_errf(e, "--save-onnx: writing '%s': %s", tmp, strerror(errno ? errno : EIO));
    at += m->param_numel[g];
  }
  if (fd >= 0 && (fsync(fd) < 0 || close(fd) < 0) && rc == 0) rc = bp_errf(e, "--save-onnx: '%s': %s", tmp, strerror(errno));
  if (rc == 0 && rename(tmp, path) < 0) rc = bp_errf(e, "--save-onnx: renaming to '%s': %s", path, strerror(errno));
  if (rc < 0) unlink(tmp);
  free(all);
  if (rc == 0 && skipped && !rt->o.quiet)
    fprintf(stderr, "train: --save-onnx: %d of %d parameters could not be written back\n", skipped, m->n_params);
  return rc;
}
