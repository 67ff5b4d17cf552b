/* codegen/onnx_offsets.c — where each parameter's bytes sit in the ONNX file, for --save-onnx.
 *
 * The trained program writes its weights back into a copy of the original ONNX file by
 * overwriting each parameter's raw_data bytes in place (same length, so nothing else in the file
 * moves and the generated program needs no protobuf library). protobuf-c parses a message into
 * structs and does not say where a field's bytes were in the input, so this file walks the
 * protobuf wire format itself, just far enough: ModelProto.graph (field 7) ->
 * GraphProto.initializer (field 5, a TensorProto) -> TensorProto.name (8), raw_data (9),
 * data_location (14). Every length is checked against the enclosing message before it is used.
 * A parameter is patchable when exactly one initializer has its name, with raw_data of exactly
 * the parameter's size, stored in the file (not external data). */
#include "codegen/codegen.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct rd {
  const uint8_t *p, *end;
} rd;

/* A varint; -1 when it runs past the end or is longer than 10 bytes. */
static int varint(rd *r, uint64_t *v) {
  uint64_t x = 0;
  for (int sh = 0; sh < 70; sh += 7) {
    if (r->p >= r->end) return -1;
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7f) << sh;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* One field: its number, wire type, and for length-delimited fields the payload [*pl, *pl+*len).
 * Skips scalar payloads. 0 ok, 1 at the end of the message, -1 malformed. */
static int field(rd *r, uint32_t *num, int *wt, const uint8_t **pl, uint64_t *len) {
  if (r->p >= r->end) return 1;
  uint64_t key, v;
  if (varint(r, &key)) return -1;
  *num = (uint32_t)(key >> 3), *wt = (int)(key & 7);
  *pl = NULL, *len = 0;
  switch (*wt) {
  case 0: return varint(r, &v) ? -1 : (*len = v, 0);
  case 1: if (r->end - r->p < 8) return -1; r->p += 8; return 0;
  case 5: if (r->end - r->p < 4) return -1; r->p += 4; return 0;
  case 2:
    if (varint(r, &v) || v > (uint64_t)(r->end - r->p)) return -1;
    *pl = r->p, *len = v;
    r->p += v;
    return 0;
  default: return -1; /* groups (3, 4) are not used by onnx.proto; 6, 7 do not exist */
  }
}

int bp_onnx_raw_offsets(const char *path, int n, const char *const *names, const int64_t *nbytes, int64_t *offsets,
                        bp_err *e) {
  for (int i = 0; i < n; i++) offsets[i] = -1;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return bp_errf(e, "%s: cannot open for reading", path);
  struct stat sb;
  if (fstat(fd, &sb) < 0 || sb.st_size <= 0) {
    close(fd);
    return bp_errf(e, "%s: empty or unreadable file", path);
  }
  size_t size = (size_t)sb.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return bp_errf(e, "%s: mmap failed", path);
  const uint8_t *base = map;
  int *count = calloc((size_t)n + 1, sizeof(int)), rc = 0;
  if (!count) {
    munmap(map, size);
    return bp_errf(e, "out of memory");
  }
  rd model = {base, base + size};
  uint32_t num;
  int wt, st;
  const uint8_t *pl;
  uint64_t len;
  while ((st = field(&model, &num, &wt, &pl, &len)) == 0) {
    if (num != 7 || wt != 2) continue;
    rd graph = {pl, pl + len};
    while ((st = field(&graph, &num, &wt, &pl, &len)) == 0) {
      if (num != 5 || wt != 2) continue;
      rd tensor = {pl, pl + len};
      const uint8_t *name = NULL, *raw = NULL;
      uint64_t name_len = 0, raw_len = 0, location = 0;
      while ((st = field(&tensor, &num, &wt, &pl, &len)) == 0) {
        if (num == 8 && wt == 2) name = pl, name_len = len;
        else if (num == 9 && wt == 2) raw = pl, raw_len = len;
        else if (num == 14 && wt == 0) location = len;
      }
      if (st < 0) break;
      if (!name) continue;
      for (int i = 0; i < n; i++) {
        if (strlen(names[i]) != name_len || memcmp(names[i], name, name_len)) continue;
        count[i]++;
        offsets[i] = raw && location == 0 && (int64_t)raw_len == nbytes[i] ? (int64_t)(raw - base) : -1;
      }
    }
    if (st < 0) break;
  }
  if (st < 0) rc = bp_errf(e, "%s: malformed protobuf (ModelProto.graph.initializer) while locating raw_data", path);
  for (int i = 0; i < n; i++)
    if (count[i] != 1) offsets[i] = -1;
  free(count);
  munmap(map, size);
  return rc;
}
