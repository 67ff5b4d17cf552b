/* tests/schedule/test_cli.c — `bitpipec schedule` end to end through bp_cmd_schedule: exit
 * codes for good runs, usage errors and rejected schedules; SVG and trace files written. */
#include "check.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

static int run(const char *line) {
  char buf[512], *argv[32];
  int argc = 0;
  snprintf(buf, sizeof buf, "%s", line);
  for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
  argv[argc] = NULL;
  fflush(stdout);
  return bp_cmd_schedule(argc, argv);
}

static long file_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  static char data[1 << 22];
  size_t n = fread(data, 1, sizeof data - 1, f);
  fclose(f);
  data[n] = 0;
  return n > 0 && strstr(data, needle) != NULL;
}

int main(void) {
  CHECK(run("schedule --compare -D 8 -N 8 --fwd 1 --bwd 2") == 0, "compare D=8 N=8");
  CHECK(run("schedule --compare -D 8 -N 32 --fwd 1 --bwd 2") == 0, "compare D=8 N=32");
  CHECK(run("schedule --schedule bitpipe -D 4 -N 4 --fwd 2 --bwd 4 --ascii") == 0, "bitpipe ascii");
  CHECK(run("schedule --schedule 1f1b -D 4 -N 8 --json") == 0, "json");
  CHECK(run("schedule --help") == 0, "help");
  CHECK(run("schedule --schedule 1f1b -D 4") == 2, "missing -N is a usage error");
  CHECK(run("schedule --schedule 1f1b -D 4 -N x") == 2, "bad number is a usage error");
  CHECK(run("schedule --bogus -D 4 -N 4") == 2, "unknown option is a usage error");
  CHECK(run("schedule --schedule chimera -D 5 -N 10") == 1, "odd D rejected by chimera");
  CHECK(run("schedule --schedule zb-v -D 4 -N 8 --svg test_cli.svg --trace test_cli.json") == 0,
        "svg + trace");
  CHECK(file_has("test_cli.svg", "</svg>"), "svg written");
  CHECK(file_has("test_cli.json", "\"traceEvents\""), "trace written");
  remove("test_cli.svg");
  remove("test_cli.json");
  return check_done();
}
