/* runtime/transport_mpi.c — the MPI transport (runtime/transport.h): MPI_Isend / MPI_Irecv for
 * activations and gradients, MPI_Iallreduce / MPI_Ibarrier for the collectives, MPI_Comm_split for
 * groups, MPI_Abort. Every communicator returns errors (MPI_ERRORS_RETURN) instead of aborting
 * silently, and each failure is reported naming the call and the rank. Requests live in a table
 * indexed by the small integers the interface hands out. */
#include "runtime/transport.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tp_mpi {
  MPI_Request *req;
  int nreq, capreq;
  int *free_req;
  int nfree;
  MPI_Comm *comm;
  int ncomm, capcomm;
} tp_mpi;

static int fail(bp_tp *t, const char *call, int rc, const char *ctx) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
  snprintf(t->err, sizeof t->err, "rank %d: %s%s%s failed: %s", t->rank, call, ctx ? " " : "", ctx ? ctx : "", msg);
  return -1;
}

static int new_req(bp_tp *t, int *out) {
  tp_mpi *m = t->state;
  if (m->nfree > 0) {
    *out = m->free_req[--m->nfree];
    return 0;
  }
  if (m->nreq == m->capreq) {
    int cap = m->capreq ? m->capreq * 2 : 64;
    MPI_Request *r = realloc(m->req, sizeof *r * (size_t)cap);
    if (!r) goto oom;
    m->req = r;
    int *f = realloc(m->free_req, sizeof *f * (size_t)cap);
    if (!f) goto oom;
    m->free_req = f;
    m->capreq = cap;
  }
  m->req[m->nreq] = MPI_REQUEST_NULL;
  *out = m->nreq++;
  return 0;
oom:
  snprintf(t->err, sizeof t->err, "rank %d: out of memory for transfer requests", t->rank);
  return -1;
}

static void release_req(bp_tp *t, int r) {
  tp_mpi *m = t->state;
  m->req[r] = MPI_REQUEST_NULL;
  m->free_req[m->nfree++] = r;
}

static int comm_of(bp_tp *t, int group, MPI_Comm *c, const char *call) {
  tp_mpi *m = t->state;
  if (group < 0 || group >= m->ncomm || m->comm[group] == MPI_COMM_NULL) {
    snprintf(t->err, sizeof t->err, "rank %d: %s on group %d, which this rank is not part of", t->rank, call, group);
    return -1;
  }
  *c = m->comm[group];
  return 0;
}

static int p2p(bp_tp *t, int send, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  const char *call = send ? "MPI_Isend" : "MPI_Irecv";
  char ctx[96];
  snprintf(ctx, sizeof ctx, "%s rank %d (tag %d, %lld bytes)", send ? "to" : "from", peer, tag, (long long)nbytes);
  if (nbytes < 0 || nbytes > INT_MAX) {
    snprintf(t->err, sizeof t->err, "rank %d: %s %s: more bytes than one MPI message carries", t->rank, call, ctx);
    return -1;
  }
  MPI_Comm c;
  if (comm_of(t, group, &c, call) < 0 || new_req(t, req) < 0) return -1;
  tp_mpi *m = t->state;
  int rc = send ? MPI_Isend(buf, (int)nbytes, MPI_BYTE, peer, tag, c, &m->req[*req])
                : MPI_Irecv(buf, (int)nbytes, MPI_BYTE, peer, tag, c, &m->req[*req]);
  if (rc != MPI_SUCCESS) {
    release_req(t, *req);
    return fail(t, call, rc, ctx);
  }
  return 0;
}

static int mpi_isend(bp_tp *t, int group, const void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return p2p(t, 1, group, (void *)buf, nbytes, peer, tag, req);
}

static int mpi_irecv(bp_tp *t, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return p2p(t, 0, group, buf, nbytes, peer, tag, req);
}

static int mpi_test(bp_tp *t, int req, int *done) {
  tp_mpi *m = t->state;
  if (req < 0 || req >= m->nreq) {
    snprintf(t->err, sizeof t->err, "rank %d: MPI_Test on unknown request %d", t->rank, req);
    return -1;
  }
  int flag = 0;
  MPI_Status st;
  int rc = MPI_Test(&m->req[req], &flag, &st);
  if (rc != MPI_SUCCESS) return fail(t, "MPI_Test", rc, NULL);
  *done = flag;
  if (flag) release_req(t, req);
  return 0;
}

static int mpi_iallreduce(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, int *req) {
  char ctx[64];
  snprintf(ctx, sizeof ctx, "(group %d, %lld values)", group, (long long)count);
  if (count < 0 || count > INT_MAX) {
    snprintf(t->err, sizeof t->err, "rank %d: MPI_Iallreduce %s: more values than one call carries", t->rank, ctx);
    return -1;
  }
  MPI_Comm c;
  if (comm_of(t, group, &c, "MPI_Iallreduce") < 0 || new_req(t, req) < 0) return -1;
  tp_mpi *m = t->state;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, dtype == BP_TP_F64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, c,
                          &m->req[*req]);
  if (rc != MPI_SUCCESS) {
    release_req(t, *req);
    return fail(t, "MPI_Iallreduce", rc, ctx);
  }
  return 0;
}

static int mpi_ibarrier(bp_tp *t, int group, int *req) {
  MPI_Comm c;
  if (comm_of(t, group, &c, "MPI_Ibarrier") < 0 || new_req(t, req) < 0) return -1;
  tp_mpi *m = t->state;
  int rc = MPI_Ibarrier(c, &m->req[*req]);
  if (rc != MPI_SUCCESS) {
    release_req(t, *req);
    return fail(t, "MPI_Ibarrier", rc, NULL);
  }
  return 0;
}

static int add_comm(bp_tp *t, MPI_Comm c, int *group) {
  tp_mpi *m = t->state;
  if (m->ncomm == m->capcomm) {
    int cap = m->capcomm ? m->capcomm * 2 : 8;
    MPI_Comm *n = realloc(m->comm, sizeof *n * (size_t)cap);
    if (!n) {
      snprintf(t->err, sizeof t->err, "rank %d: out of memory for communicators", t->rank);
      return -1;
    }
    m->comm = n;
    m->capcomm = cap;
  }
  m->comm[m->ncomm] = c;
  *group = m->ncomm++;
  return 0;
}

static int mpi_split(bp_tp *t, int color, int key, int *group) {
  MPI_Comm c = MPI_COMM_NULL;
  tp_mpi *m = t->state;
  /* MPI_Comm_split is blocking: a dead rank would hang it. Every rank reaches the splits at
   * start-up, after the barrier that checks all of them are alive. */
  int rc = MPI_Comm_split(m->comm[0], color >= 0 ? color : MPI_UNDEFINED, key, &c);
  if (rc != MPI_SUCCESS) return fail(t, "MPI_Comm_split", rc, NULL);
  *group = -1;
  if (c == MPI_COMM_NULL) return 0;
  rc = MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) return fail(t, "MPI_Comm_set_errhandler", rc, NULL);
  return add_comm(t, c, group);
}

static int mpi_group_size(bp_tp *t, int group, int *size) {
  MPI_Comm c;
  if (comm_of(t, group, &c, "MPI_Comm_size") < 0) return -1;
  int rc = MPI_Comm_size(c, size);
  return rc == MPI_SUCCESS ? 0 : fail(t, "MPI_Comm_size", rc, NULL);
}

static void mpi_progress(bp_tp *t) {
  tp_mpi *m = t->state;
  int flag;
  /* any MPI call drives Open MPI's progress engine; a probe matches nothing and costs little.
   * Errors here surface at the next test of a request. */
  (void)MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, m->comm[0], &flag, MPI_STATUS_IGNORE);
}

static void mpi_abort(bp_tp *t, int code) {
  (void)t;
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  exit(code); /* MPI_Abort does not return; keep the compiler and analysers sure of it */
}

static int mpi_finalize(bp_tp *t) {
  tp_mpi *m = t->state;
  int rc = MPI_SUCCESS;
  if (m) {
    for (int i = 0; i < m->ncomm; i++)
      if (m->comm[i] != MPI_COMM_NULL && (rc = MPI_Comm_free(&m->comm[i])) != MPI_SUCCESS) {
        fail(t, "MPI_Comm_free", rc, NULL);
        rc = MPI_SUCCESS; /* reported; finalize anyway */
        fprintf(stderr, "train: %s\n", t->err);
      }
    free(m->comm);
    free(m->req);
    free(m->free_req);
    free(m);
    t->state = NULL;
  }
  rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? 0 : fail(t, "MPI_Finalize", rc, NULL);
}

static const bp_tp_impl mpi_impl = {
    "mpi", mpi_isend, mpi_irecv, mpi_test, mpi_iallreduce, mpi_ibarrier, mpi_split, mpi_group_size,
    mpi_progress, mpi_abort, mpi_finalize, NULL,
};

int bp_tp_mpi_init(bp_tp *t, int *argc, char ***argv) {
  memset(t, 0, sizeof *t);
  t->impl = &mpi_impl;
  t->timeout_s = 20;
  int rc = MPI_Init(argc, argv);
  if (rc != MPI_SUCCESS) {
    fprintf(stderr, "train: MPI_Init failed (error %d)\n", rc);
    return -1;
  }
  if ((rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)) != MPI_SUCCESS) {
    fprintf(stderr, "train: MPI_Comm_set_errhandler on MPI_COMM_WORLD failed (error %d)\n", rc);
    return -1;
  }
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &t->rank)) != MPI_SUCCESS ||
      (rc = MPI_Comm_size(MPI_COMM_WORLD, &t->size)) != MPI_SUCCESS) {
    fail(t, "MPI_Comm_rank/size", rc, NULL);
    fprintf(stderr, "train: %s\n", t->err);
    return -1;
  }
  tp_mpi *m = calloc(1, sizeof *m);
  if (!m) {
    fprintf(stderr, "train: rank %d: out of memory\n", t->rank);
    return -1;
  }
  t->state = m;
  /* group 0: a duplicate of the world, so the runtime's messages never meet a library's */
  MPI_Comm w;
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &w)) != MPI_SUCCESS) {
    fail(t, "MPI_Comm_dup", rc, NULL);
    fprintf(stderr, "train: %s\n", t->err);
    return -1;
  }
  if ((rc = MPI_Comm_set_errhandler(w, MPI_ERRORS_RETURN)) != MPI_SUCCESS) {
    fail(t, "MPI_Comm_set_errhandler", rc, NULL);
    fprintf(stderr, "train: %s\n", t->err);
    return -1;
  }
  /* the largest tag: message identities must fit (checked by the executor) */
  int *ub = NULL, flag = 0;
  if ((rc = MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag)) != MPI_SUCCESS) {
    fail(t, "MPI_Comm_get_attr(MPI_TAG_UB)", rc, NULL);
    fprintf(stderr, "train: %s\n", t->err);
    return -1;
  }
  t->max_tag = flag && ub ? *ub : 32767; /* the standard's guaranteed minimum */
  int g;
  if (add_comm(t, w, &g) < 0) {
    fprintf(stderr, "train: %s\n", t->err);
    return -1;
  }
  return 0;
}
