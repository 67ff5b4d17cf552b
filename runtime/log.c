/* runtime/log.c — output conventions of ./train: errors carry the world rank that found them
 * ("rank R: ..."), and what every rank would print alike (the configuration, step lines, the
 * summary) is printed by world rank 0 only, on stdout, flushed per line so a killed job still
 * shows its last steps. */
#include "runtime/rt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bp_rt_errf(bp_rt *rt, bp_err *e, const char *fmt, ...) {
  if (e->set) return -1;
  char msg[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (rt && strncmp(msg, "rank ", 5) != 0) return bp_errf(e, "rank %d: %s", rt->wrank, msg);
  return bp_errf(e, "%s", msg);
}

int bp_rt_err_wrap(bp_rt *rt, bp_err *e, const char *fmt, ...) {
  char old[sizeof e->msg], ctx[512] = "";
  snprintf(old, sizeof old, "%s", e->set ? e->msg : "failed");
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
  }
  e->set = 0;
  if (strncmp(old, "rank ", 5) == 0) return bp_errf(e, "%s%s%s", old, *ctx ? " (" : "", *ctx ? ctx : "");
  if (*ctx) return bp_errf(e, "rank %d: %s: %s", rt->wrank, ctx, old);
  return bp_errf(e, "rank %d: %s", rt->wrank, old);
}

void bp_rt_say(bp_rt *rt, const char *fmt, ...) {
  if (rt->wrank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}
