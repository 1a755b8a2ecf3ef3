#include "patron/optim.h"

#include <math.h>
#include <string.h>

struct simplex {
    int dim;
    double v[PATRON_OPTIM_DIM_MAX + 1][PATRON_OPTIM_DIM_MAX];
    double f[PATRON_OPTIM_DIM_MAX + 1];
};

static double eval(patron_optim_fn fn, void *ud, const double *x, int *evals)
{
    (*evals)++;
    double y = fn(x, ud);
    return isfinite(y) ? y : INFINITY;
}

/* Insertion sort by value, ties kept in place (Lagarias et al.'s rule that
 * keeps the sort deterministic). */
static void order(struct simplex *s)
{
    for (int i = 1; i <= s->dim; i++) {
        double f = s->f[i];
        double v[PATRON_OPTIM_DIM_MAX];
        memcpy(v, s->v[i], sizeof(v));
        int j = i - 1;
        while (j >= 0 && s->f[j] > f) {
            s->f[j + 1] = s->f[j];
            memcpy(s->v[j + 1], s->v[j], sizeof(v));
            j--;
        }
        s->f[j + 1] = f;
        memcpy(s->v[j + 1], v, sizeof(v));
    }
}

static bool converged(const struct simplex *s, const struct patron_optim_options *opt)
{
    int n = s->dim;
    if (!isfinite(s->f[n]) || fabs(s->f[n] - s->f[0]) > opt->ftol * (1.0 + fabs(s->f[0])))
        return false;
    for (int i = 1; i <= n; i++)
        for (int j = 0; j < n; j++)
            if (fabs(s->v[i][j] - s->v[0][j]) > opt->xtol)
                return false;
    return true;
}

/* point = centroid + t * (centroid - worst) */
static void along(const struct simplex *s, const double *centroid, double t, double *point)
{
    for (int j = 0; j < s->dim; j++)
        point[j] = centroid[j] + t * (centroid[j] - s->v[s->dim][j]);
}

static void replace_worst(struct simplex *s, const double *point, double f)
{
    memcpy(s->v[s->dim], point, sizeof(double) * (size_t)s->dim);
    s->f[s->dim] = f;
}

/* One Nelder-Mead run from x; returns the best value, x updated. */
static double run(patron_optim_fn fn, void *ud, double *x, int n,
                  const struct patron_optim_options *opt, int *evals)
{
    struct simplex s = {.dim = n};
    int budget = *evals + opt->max_evals;
    for (int i = 0; i <= n; i++) {
        memcpy(s.v[i], x, sizeof(double) * (size_t)n);
        if (i > 0)
            s.v[i][i - 1] += opt->step;
        s.f[i] = eval(fn, ud, s.v[i], evals);
    }
    order(&s);
    while (*evals < budget && !converged(&s, opt)) {
        double c[PATRON_OPTIM_DIM_MAX] = {0}, r[PATRON_OPTIM_DIM_MAX], e[PATRON_OPTIM_DIM_MAX];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                c[j] += s.v[i][j] / n;
        along(&s, c, 1.0, r);
        double fr = eval(fn, ud, r, evals);
        if (fr < s.f[0]) {
            along(&s, c, 2.0, e);
            double fe = eval(fn, ud, e, evals);
            if (fe < fr)
                replace_worst(&s, e, fe);
            else
                replace_worst(&s, r, fr);
        } else if (fr < s.f[n - 1]) {
            replace_worst(&s, r, fr);
        } else {
            /* contract: outside when the reflection beat the worst, else inside */
            bool outside = fr < s.f[n];
            along(&s, c, outside ? 0.5 : -0.5, e);
            double fc = eval(fn, ud, e, evals);
            if (outside ? fc <= fr : fc < s.f[n]) {
                replace_worst(&s, e, fc);
            } else {
                for (int i = 1; i <= n; i++) {
                    for (int j = 0; j < n; j++)
                        s.v[i][j] = s.v[0][j] + 0.5 * (s.v[i][j] - s.v[0][j]);
                    s.f[i] = eval(fn, ud, s.v[i], evals);
                }
            }
        }
        order(&s);
    }
    memcpy(x, s.v[0], sizeof(double) * (size_t)n);
    return s.f[0];
}

int patron_optim_nelder_mead(patron_optim_fn fn, void *ud, double *x, int dim,
                             const struct patron_optim_options *opt, double *fmin)
{
    if (dim < 1 || dim > PATRON_OPTIM_DIM_MAX || !(opt->step > 0) || !(opt->ftol >= 0) ||
        !(opt->xtol >= 0) || opt->max_evals < dim + 1 || opt->max_restarts < 0)
        return PATRON_EINVAL;
    int evals = 0;
    double best = run(fn, ud, x, dim, opt, &evals);
    for (int i = 0; i < opt->max_restarts; i++) {
        double again = run(fn, ud, x, dim, opt, &evals);
        bool improved = best - again > opt->ftol * (1.0 + fabs(best));
        best = again < best ? again : best;
        if (!improved)
            break;
    }
    if (fmin)
        *fmin = best;
    return evals;
}
