/*
 * Nelder-Mead minimisation of a function of a few real variables: the
 * maximum-likelihood fits of clv.h run it on the logarithms of their
 * parameters.
 *
 * J. A. Nelder and R. Mead (1965), "A simplex method for function
 * minimization", with the standard coefficients (reflection 1, expansion 2,
 * contraction 1/2, shrink 1/2) and J. C. Lagarias et al. (1998)'s ordering
 * rules. Deterministic: the same function and start give the same answer,
 * bit for bit. Pure, no allocation (the simplex lives on the stack, at most
 * PATRON_OPTIM_DIM_MAX variables). Safe from any thread.
 */
#ifndef PATRON_OPTIM_H
#define PATRON_OPTIM_H

#include "patron/common.h"

#define PATRON_OPTIM_DIM_MAX 8

/* The function to minimise at x (dim values). A non-finite result counts as
 * +infinity (the simplex moves away from it). */
typedef double (*patron_optim_fn)(const double *x, void *ud);

struct patron_optim_options {
    double step;      /* initial simplex: x + step along each axis (> 0) */
    double ftol;      /* stop when the simplex's values are within ftol * (1 + |best|) */
    double xtol;      /* ... and its vertices within xtol of the best on every axis */
    int max_evals;    /* per run, at least dim + 1 */
    int max_restarts; /* fresh simplices from the best point while they still improve */
};

/* Minimises fn from x (dim values, 1..PATRON_OPTIM_DIM_MAX); on return x holds
 * the best point found and *fmin (if not NULL) its value. Returns the
 * number of evaluations, or PATRON_EINVAL for a bad dim or options. A run
 * ends at convergence or at max_evals; then, up to max_restarts times, a new
 * simplex is built around the best point, and the search stops as soon as
 * a run improves on its start by less than ftol (a collapsed simplex is the
 * method's known failure; the restart is the usual cure). */
int patron_optim_nelder_mead(patron_optim_fn fn, void *ud, double *x, int dim,
                             const struct patron_optim_options *opt, double *fmin) PATRON_MUST_USE;

#endif
