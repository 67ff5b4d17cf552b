/* frontend/optimizer.c — parameter updates with PyTorch's semantics (torch.optim.SGD and
 * torch.optim.AdamW, default arguments otherwise): float32 parameters and state, scalars in double.
 * `gscale` multiplies the gradient first (gradient clipping by global norm). */
#include "frontend/train.h"

#include <math.h>

void bp_sgd_update(float *p, const float *g, float *buf, int64_t n, int first, double lr, double momentum,
                   double wd, double gscale) {
  for (int64_t i = 0; i < n; i++) {
    float d = (float)(g[i] * gscale);
    if (wd != 0) d += (float)wd * p[i];
    if (momentum != 0) {
      buf[i] = first ? d : (float)momentum * buf[i] + d;
      d = buf[i];
    }
    p[i] -= (float)lr * d;
  }
}

void bp_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, int step, double lr, double beta1,
                     double beta2, double eps, double wd, double gscale) {
  double bc1 = 1 - pow(beta1, step), bc2 = 1 - pow(beta2, step);
  float step_size = (float)(lr / bc1), bc2s = (float)sqrt(bc2), decay = (float)(1 - lr * wd);
  float b1 = (float)beta1, b2 = (float)beta2;
  for (int64_t i = 0; i < n; i++) {
    float d = (float)(g[i] * gscale);
    p[i] *= decay;
    m[i] += (d - m[i]) * (1 - b1);
    v[i] = v[i] * b2 + (1 - b2) * d * d;
    float denom = sqrtf(v[i]) / bc2s + (float)eps;
    p[i] -= step_size * (m[i] / denom);
  }
}
