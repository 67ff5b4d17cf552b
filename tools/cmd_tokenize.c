/* tools/cmd_tokenize.c — `bitpipec tokenize FILE... -o tokens.bin`: turns text into a token file
 * the generated training program reads with --data. The tokenizer is the byte: token = byte value
 * (vocabulary 256), which every model with a vocabulary of at least 256 can train on, and which
 * needs no download. The file format is llm.c's: a header of 256 little-endian int32 (magic
 * 20240520, version 1, number of tokens, then zeros) followed by the tokens as uint16. */
#include "tools/commands.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKENS_MAGIC 20240520
#define TOKENS_VERSION 1

static void help(FILE *f) {
  fprintf(f,
          "usage: bitpipec tokenize FILE [FILE...] -o OUT.bin [--repeat K]\n"
          "\n"
          "Writes the bytes of the FILEs (concatenated, each repeated K times; default 1) as tokens\n"
          "0..255 into OUT.bin in llm.c's token format (256 int32 header: 20240520, 1, count; then\n"
          "uint16 tokens), for './train --data OUT.bin'. Byte tokens fit any vocabulary >= 256.\n"
          "Example: bitpipec tokenize /usr/share/common-licenses/GPL-3 -o gpl3.bin\n");
}

/* Appends the bytes of `path` to *buf as uint16 tokens. */
static int read_tokens(const char *path, uint16_t **buf, size_t *n, size_t *cap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bitpipec tokenize: %s: %s\n", path, strerror(errno));
    return -1;
  }
  unsigned char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (*n + got > *cap) {
      size_t nc = (*cap ? *cap * 2 : 1 << 16);
      while (nc < *n + got) nc *= 2;
      uint16_t *nb = realloc(*buf, nc * sizeof **buf);
      if (!nb) {
        fclose(f);
        fprintf(stderr, "bitpipec tokenize: out of memory reading %s\n", path);
        return -1;
      }
      *buf = nb;
      *cap = nc;
    }
    for (size_t i = 0; i < got; i++) (*buf)[(*n)++] = chunk[i];
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "bitpipec tokenize: %s: read error\n", path);
    return -1;
  }
  return 0;
}

int bp_cmd_tokenize(int argc, char **argv) {
  const char *out = NULL;
  long repeat = 1;
  const char **files = calloc((size_t)argc, sizeof *files);
  int nfiles = 0;
  if (!files) return 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      free(files);
      return 0;
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      char *end;
      repeat = strtol(argv[++i], &end, 10);
      if (*end || repeat < 1 || repeat > 100000) {
        fprintf(stderr, "bitpipec tokenize: --repeat expects an integer in 1..100000, got '%s'\n", argv[i]);
        free(files);
        return 2;
      }
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "bitpipec tokenize: unknown or incomplete option '%s' (try --help)\n", argv[i]);
      free(files);
      return 2;
    } else {
      files[nfiles++] = argv[i];
    }
  }
  if (!out || nfiles == 0) {
    help(stderr);
    free(files);
    return 2;
  }
  uint16_t *tok = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  for (long r = 0; r < repeat && rc == 0; r++)
    for (int k = 0; k < nfiles && rc == 0; k++) rc = read_tokens(files[k], &tok, &n, &cap);
  if (rc == 0 && (n < 2 || n > INT32_MAX)) {
    fprintf(stderr, "bitpipec tokenize: %zu tokens: need between 2 and %d\n", n, INT32_MAX);
    rc = -1;
  }
  if (rc == 0) {
    /* written to a temporary name and renamed, so a reader never sees a half-written file */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    int32_t header[256] = {TOKENS_MAGIC, TOKENS_VERSION, (int32_t)n};
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(header, sizeof header, 1, f) == 1 && fwrite(tok, sizeof *tok, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, out) != 0) {
      fprintf(stderr, "bitpipec tokenize: cannot write %s: %s\n", out, strerror(errno));
      remove(tmp);
      rc = -1;
    } else {
      printf("%s: %zu tokens (bytes of %d file%s x %ld)\n", out, n, nfiles, nfiles > 1 ? "s" : "", repeat);
    }
  }
  free(tok);
  free(files);
  return rc == 0 ? 0 : 1;
}
