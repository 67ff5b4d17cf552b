/* partitioner/generators.c — the table of schedule generators and the one entry point that runs
 * a generator and lowers its compute order into a complete program. */
#include "partitioner/schedule.h"

#include <string.h>

static const bp_schedule_info table[] = {
    {"gpipe", "GPipe: all forwards, then all backwards", "any D, N", bp_gen_gpipe},
    {"1f1b", "1F1B (DAPPLE / PipeDream-Flush)", "any D, N", bp_gen_1f1b},
    {"interleaved", "interleaved 1F1B, v chunks per rank (Megatron-LM)",
     "N a multiple of D; --chunks v (default 2)", bp_gen_interleaved},
    {"chimera", "Chimera: two pipelines in opposite directions", "D even, N a multiple of D",
     bp_gen_chimera},
    {"bitpipe", "BitPipe, the authors' order (two V-shaped interleaved pipelines)",
     "D even, N a multiple of D", bp_gen_bitpipe},
    {"bitpipe-steady", "BitPipe with a continuous steady state across units of D micro-batches",
     "D even, N a multiple of D", bp_gen_bitpipe_steady},
    {"zb-h1", "zero bubble ZB-H1 (1F1B with backward split into B and W)", "any D, N",
     bp_gen_zb_h1},
    {"zb-v", "zero bubble ZB-V (V-shaped, 2 chunks per rank, B/W split)", "any D, N",
     bp_gen_zb_v},
};

const bp_schedule_info *bp_schedule_list(int *count) {
  *count = (int)(sizeof table / sizeof table[0]);
  return table;
}

const bp_schedule_info *bp_schedule_find(const char *name) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}

int bp_schedule_generate(const char *name, const bp_sched_params *sp, bp_program *out, char *err,
                         size_t errlen) {
  memset(out, 0, sizeof *out); /* so that bp_program_free is safe whatever happens */
  const bp_schedule_info *info = bp_schedule_find(name);
  if (!info) {
    int n = 0;
    char names[256] = "";
    const bp_schedule_info *all = bp_schedule_list(&n);
    for (int i = 0; i < n; i++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
               all[i].name);
    return bp_sched_errf(err, errlen, "unknown schedule '%s' (known: %s)", name, names);
  }
  if (sp->D > 4096 || sp->N > 1 << 20)
    return bp_sched_errf(err, errlen, "%s: D=%d N=%d is beyond this tool's range", name, sp->D,
                         sp->N);
  if (info->generate(sp, out, err, errlen)) return -1;
  return bp_program_lower(out, err, errlen);
}
