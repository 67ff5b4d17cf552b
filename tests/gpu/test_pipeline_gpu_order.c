/* tests/gpu/test_pipeline_gpu_order.c — the runtime's check that a program suits NCCL's in-order
 * matching (runtime/msgorder.c, bp_rt_p2p_in_order), which decides whether GPU ranks may use the
 * NCCL transport. Needs no GPU (it reads programs only).
 *   - GPipe and 1F1B (one pipe; every pair exchanges activations and gradients in micro-batch
 *     order on both sides by construction) must be found in order for every D and N tried;
 *   - a planted swap of two receives from the same sender (1F1B, D=4, N=8, rank 1's first two
 *     RECV_ACT) must be found out of order, naming ranks 0 and 1;
 *   - the other schedules' verdicts are printed (which ones NCCL can serve). */
#include "runtime/rt.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  int fails = 0, count = 0;
  const bp_schedule_info *list = bp_schedule_list(&count);
  const int Ds[] = {2, 4, 8}, Ns[] = {4, 8, 16};
  printf("%-16s", "schedule");
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) printf(" D=%d,N=%-3d", Ds[i], Ns[j]);
  printf("   (in order: NCCL can carry it; - : the schedule does not take that D, N)\n");
  for (int s = 0; s < count; s++) {
    printf("%-16s", list[s].name);
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        bp_sched_params sp = {Ds[i], Ns[j], 0};
        bp_program p;
        char err[512], why[256] = "";
        memset(&p, 0, sizeof p);
        if (bp_schedule_generate(list[s].name, &sp, &p, err, sizeof err) < 0) {
          printf(" %10s", "-");
          bp_program_free(&p);
          continue;
        }
        int ok = bp_rt_p2p_in_order(&p, why, sizeof why);
        printf(" %10s", ok == 1 ? "in order" : ok == 0 ? "NOT" : "error");
        if ((!strcmp(list[s].name, "gpipe") || !strcmp(list[s].name, "1f1b")) && ok != 1) {
          fprintf(stderr, "FAIL %s D=%d N=%d: found out of order: %s\n", list[s].name, Ds[i], Ns[j], why);
          fails++;
        }
        bp_program_free(&p);
      }
    printf("\n");
  }
  /* planted: rank 1 of 1F1B D=4 N=8 receives its first two activations the other way round */
  bp_sched_params sp = {4, 8, 0};
  bp_program p;
  char err[512], why[256] = "";
  memset(&p, 0, sizeof p);
  if (bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) < 0) {
    fprintf(stderr, "FAIL: 1f1b D=4 N=8: %s\n", err);
    return 1;
  }
  bp_rank_program *rp = &p.rank[1];
  int a = -1, b = -1;
  for (int i = 0; i < rp->n && b < 0; i++)
    if (rp->code[i].op == BP_OP_RECV_ACT) {
      if (a < 0) a = i;
      else b = i;
    }
  if (a < 0 || b < 0) {
    fprintf(stderr, "FAIL: rank 1 of 1f1b has fewer than two RECV_ACT\n");
    fails++;
  } else {
    int t = rp->code[a].mb;
    rp->code[a].mb = rp->code[b].mb;
    rp->code[b].mb = t;
    int ok = bp_rt_p2p_in_order(&p, why, sizeof why);
    if (ok != 0 || !strstr(why, "rank 0") || !strstr(why, "rank 1")) {
      fprintf(stderr, "FAIL: two swapped receives not found (verdict %d: %s)\n", ok, why);
      fails++;
    } else
      printf("planted swap (1f1b D=4 N=8, rank 1's first two receives): found: %s\n", why);
  }
  bp_program_free(&p);
  printf("%s\n", fails ? "FAILURES" : "all passed");
  return fails ? 1 : 0;
}
