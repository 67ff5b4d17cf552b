/* runtime/msgorder.c — whether a program suits a transport that matches messages in posting order
 * (NCCL pairs the sends and receives of two ranks in the order each side posts them; the runtime
 * names messages by identity, as MPI tags). The runtime posts in instruction order, so the program
 * must have, for every ordered pair of pipeline ranks, the sender's SEND instructions to the
 * receiver carry the same messages in the same order as the receiver's RECV instructions from the
 * sender. transport_select.c uses NCCL only for such programs. */
#include "runtime/rt.h"

#include <stdlib.h>
#include <string.h>

int bp_rt_p2p_in_order(const bp_program *p, char *why, size_t n) {
  int most = 0;
  for (int r = 0; r < p->D; r++) most = p->rank[r].n > most ? p->rank[r].n : most;
  int *a = malloc(sizeof(int) * (size_t)(most + 1)), *b = malloc(sizeof(int) * (size_t)(most + 1));
  int ok = a && b ? 1 : -1;
  if (ok < 0) snprintf(why, n, "out of memory checking the message order");
  for (int s = 0; ok == 1 && s < p->D; s++)
    for (int d = 0; ok == 1 && d < p->D; d++) {
      if (s == d) continue;
      int na = 0, nb = 0;
      for (int i = 0; i < p->rank[s].n; i++) {
        const bp_instr *x = &p->rank[s].code[i];
        if ((x->op == BP_OP_SEND_ACT || x->op == BP_OP_SEND_GRAD) && x->peer == d) a[na++] = bp_program_msg_key(p, s, x, NULL);
      }
      for (int i = 0; i < p->rank[d].n; i++) {
        const bp_instr *x = &p->rank[d].code[i];
        if ((x->op == BP_OP_RECV_ACT || x->op == BP_OP_RECV_GRAD) && x->peer == s) b[nb++] = bp_program_msg_key(p, d, x, NULL);
      }
      if (na != nb || memcmp(a, b, sizeof(int) * (size_t)na) != 0) {
        int k = 0;
        while (k < na && k < nb && a[k] == b[k]) k++;
        snprintf(why, n, "rank %d's message %d to rank %d is not the message rank %d receives %d-th from it", s, k, d, d,
                 k);
        ok = 0;
      }
    }
  free(a);
  free(b);
  return ok;
}
