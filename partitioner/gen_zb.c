/* placeholder, replaced below */
#include "partitioner/schedule.h"
int bp_gen_zb_h1(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {(void)sp;(void)out; return bp_sched_errf(err, errlen, "todo");}
int bp_gen_zb_v(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {(void)sp;(void)out; return bp_sched_errf(err, errlen, "todo");}
