"""Derivation checks for the pruning limit (docs/math.md §2): each proves its identity in sympy where a closed
form exists and evaluates the :mod:`theory.limits` / :mod:`theory.quadratic` functions it covers against an
independent exact (sympy, fractions) or 40-digit (mpmath) computation of the same quantity, on spectra whose
answer is known in closed form (single and two atoms, known margins) and on general ones.

Pinned to 1e-10: the free and flat thresholds, the sharpness and uncompensated bounds, the bands, the
delta-method standard error (to the accuracy of its central differences), the negative-eigenvalue policies,
the zero mass, ``kept_count``, ``R(ρ)``, the authors' ratio, the exact quadratic oracle and the cone slopes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import sympy as sp

from proofs_check._compare import EPS, Tally, to_mp
from proofs_check.registry import CheckResult, check

_DPS = 40


# ---------------------------------------------------------------------------------------------------------
# mpmath reference of the pruning limit (written from docs/math.md §2, independent of theory.limits)
# ---------------------------------------------------------------------------------------------------------
class _Ref:
    """The pruning-limit quantities at the working precision for a measure given per probe as lists of
    ``(node λ ≥ 0, weight)`` and the prunable weights ``w`` (``R²(ρ)`` interpolated linearly in the cumulative
    sum of the sorted squares)."""

    def __init__(self, probes: list[list[tuple]], w, eps) -> None:
        self.probes = [[(mp.mpf(l), mp.mpf(p)) for l, p in pr] for pr in probes]
        self.pooled = [(l, p / len(self.probes)) for pr in self.probes for l, p in pr]
        sq = sorted(mp.mpf(v) ** 2 for v in w)
        self.N = len(sq)
        self.cum = [mp.mpf(0)]
        for v in sq:
            self.cum.append(self.cum[-1] + v)
        self.eps = mp.mpf(eps)
        self.rank = mp.fsum(p for l, p in self.pooled if l > 0)
        self.nonzero = mp.mpf(sum(1 for v in sq if v != 0)) / self.N
        self.mean = mp.fsum(l * p for l, p in self.pooled)

    def R2(self, rho):
        j = (1 - mp.mpf(rho)) * self.N
        i = int(mp.floor(j))
        if i >= self.N:
            return self.cum[self.N]
        return self.cum[i] + (j - i) * (self.cum[i + 1] - self.cum[i])

    def dR2(self, rho):  # derivative of the linear interpolation (away from the knots)
        i = int(mp.floor((1 - mp.mpf(rho)) * self.N))
        return -self.N * (self.cum[i + 1] - self.cum[i])

    @staticmethod
    def _E(measure, f):
        return mp.fsum(p * f(l) for l, p in measure)

    def s(self, rho, measure=None):
        """The s > 0 with E[λ/(λ + s)] = ρ (decreasing in s), in log s."""
        m = self.pooled if measure is None else measure
        g = lambda u: self._E(m, lambda l: l / (l + mp.exp(u))) - rho  # noqa: E731
        # E[λ/(λ+s)] ≤ E[λ]/s < ρ at s = 4E[λ]/ρ; at s = 1e-60 it is the rank fraction (> ρ)
        mean = self._E(m, lambda l: l)
        return mp.exp(_root(g, mp.log(mp.mpf(10) ** -60), mp.log(4 * mean / rho)))

    def delta_free(self, rho):
        if rho >= self.rank:
            return mp.mpf(0)
        return self.R2(rho) * rho * self.s(rho) / (1 - rho) / 2

    def flat_T(self, rho, measure=None):
        m = self.pooled if measure is None else measure
        R2 = self.R2(rho)
        return self._E(m, lambda l: l * R2 / (l * R2 + 2 * self.eps))

    def free(self):
        hi = min(self.rank, self.nonzero)
        if self.delta_free(mp.mpf(10) ** -30) <= self.eps:
            return mp.mpf(0)
        return _root(lambda r: self.delta_free(r) - self.eps, mp.mpf(10) ** -30, hi)

    def flat(self):
        return _root(lambda r: r - self.flat_T(r), mp.mpf(0), mp.mpf(1))

    def uncompensated(self):
        if self.cum[-1] * self.mean / 2 <= self.eps:
            return mp.mpf(0)
        return _root(lambda r: self.R2(r) * self.mean / 2 - self.eps, mp.mpf(0), mp.mpf(1))

    def sharpness(self, rho):
        t = self.mean * self.R2(rho)
        return t / (t + 2 * self.eps) if t > 0 else mp.mpf(0)

    def stderr_flat(self, rho):
        per = [self.flat_T(rho, pr) for pr in self.probes]
        se = _sample_sd(per) / mp.sqrt(len(per))
        R2, dR2 = self.R2(rho), self.dR2(rho)
        dT = self._E(self.pooled, lambda l: 2 * self.eps * l * dR2 / (l * R2 + 2 * self.eps) ** 2)
        return se / (1 - dT)

    def stderr_free(self, rho):
        s = self.s(rho)
        per = [self._E(pr, lambda l: l / (l + s)) for pr in self.probes]
        se_g = _sample_sd(per) / mp.sqrt(len(per))
        gprime = -self._E(self.pooled, lambda l: l / (l + s) ** 2)
        dlog_s = -s * gprime
        dlogD = self.dR2(rho) / self.R2(rho) + 1 / rho + (1 / gprime) / s + 1 / (1 - rho)
        return se_g / dlog_s / abs(dlogD)


def _sample_sd(vals) -> mp.mpf:
    m = mp.fsum(vals) / len(vals)
    return mp.sqrt(mp.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def _root(f, lo, hi) -> mp.mpf:
    """The root of a continuous ``f`` with a sign change on ``[lo, hi]``: Illinois steps with a bisection
    every third step, until the bracket is below 10^(5 − dps) relative."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    flo, fhi = f(lo), f(hi)
    if flo == 0:
        return lo
    if fhi == 0:
        return hi
    if (flo > 0) == (fhi > 0):
        raise ArithmeticError(f"no sign change on [{lo}, {hi}]")
    tol = mp.mpf(10) ** (5 - mp.mp.dps)
    side = 0
    for it in range(2000):
        x = (lo + hi) / 2 if it % 3 == 2 else (lo * fhi - hi * flo) / (fhi - flo)
        fx = f(x)
        if fx == 0:
            return x
        if (fx > 0) == (fhi > 0):
            hi, fhi = x, fx
            if side == -1:
                flo /= 2
            side = -1
        else:
            lo, flo = x, fx
            if side == 1:
                fhi /= 2
            side = 1
        if hi - lo <= tol * (abs(lo) + abs(hi)) + mp.mpf(10) ** (-2 * mp.mp.dps):
            break
    return (lo + hi) / 2


def _atoms(values, counts) -> list:
    n = sum(counts)
    return [(v, mp.mpf(c) / n) for v, c in zip(values, counts)]


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/schur-compensation",
    "§2 exact oracle: min_{d_T} ½dᵀHd (d_P fixed) = ½ d_Pᵀ(H_PP − H_PT H_TT⁻¹ H_TP)d_P = ½ d_Pᵀ[(H⁻¹)_PP]⁻¹ d_P; "
    "QuadraticModel against exact rational Schur complements for every k (PD, and singular PSD with H_TT singular)",
    covers=(
        "theory.quadratic.QuadraticModel.schur_complement",
        "theory.quadratic.QuadraticModel.compensated_increase",
        "theory.quadratic.QuadraticModel.uncompensated_increase",
        "theory.quadratic.QuadraticModel.compensated_weights",
        "theory.quadratic.QuadraticModel.magnitude_curve",
        "theory.quadratic.QuadraticModel.magnitude_threshold",
    ),
)
def schur_compensation() -> CheckResult:
    # generic symmetric 3×3, T = {0}, P = {1, 2}
    h = sp.symbols("h00 h01 h02 h11 h12 h22")
    H = sp.Matrix([[h[0], h[1], h[2]], [h[1], h[3], h[4]], [h[2], h[4], h[5]]])
    x, p1, p2 = sp.symbols("x p1 p2")
    d = sp.Matrix([x, p1, p2])
    q = (d.T * H * d)[0] / 2
    xs = sp.solve(sp.diff(q, x), x)[0]
    val = sp.simplify(q.subs(x, xs))
    S = H[1:, 1:] - H[1:, :1] * H[:1, :1].inv() * H[:1, 1:]
    dP = sp.Matrix([p1, p2])
    tally = Tally()
    tally.check("symbolic min = ½ d_PᵀSd_P", sp.simplify(val - (dP.T * S * dP)[0] / 2) == 0)
    tally.check("symbolic S = [(H⁻¹)_PP]⁻¹", sp.simplify(S - H.inv()[1:, 1:].inv()) == sp.zeros(2, 2))

    from theory.quadratic import QuadraticModel

    # (a) positive definite H = BᵀB + I, (b) singular PSD H = BBᵀ (rank 4 of 6) whose kept block H_TT is
    # singular for |T| = 4 (two kept rows of B are equal) while the pruned part is not in its range
    B = sp.Matrix([[2, -1, 0, 1, 3], [1, 1, -2, 0, 1], [0, 2, 1, -1, 0], [1, 0, 1, 2, -1], [-1, 1, 0, 1, 2]])
    Ha = B.T * B + sp.eye(5)
    wa = [sp.Rational(v, 8) for v in (9, -3, 7, 1, -5)]
    Bs = sp.Matrix([[1, 2, 0, 1], [1, 2, 0, 1], [0, 1, 3, -1], [2, 0, 1, 1], [1, -1, 2, 0], [3, 1, -1, 2]])
    Hb = Bs * Bs.T
    wb = [sp.Rational(v, 4) for v in (-11, 10, 9, 8, 3, -2)]  # T_4 = {0, 1, 2, 3}: rows 0 and 1 of Bs are equal
    for label, Hs, ws in (("PD", Ha, wa), ("singular PSD", Hb, wb)):
        n = Hs.shape[0]
        model = QuadraticModel(np.array(Hs, dtype=float), np.array([float(v) for v in ws]))
        order = sorted(range(n), key=lambda i: (-abs(ws[i]), i))
        scale = float(max(abs(v) for v in Hs)) * float(sum(v * v for v in ws))
        exact = []
        for k in range(n + 1):
            T, P = sorted(order[:k]), sorted(order[k:])
            cP = sp.Matrix([ws[i] for i in P])
            HPP = Hs.extract(P, P)
            if T:
                HTT, HTP = Hs.extract(T, T), Hs.extract(T, P)
                # exact least squares through the pseudo-inverse (sympy's exact pinv of a rational matrix)
                S_ex = HPP - HTP.T * HTT.pinv() * HTP
                if P:
                    wT = sp.Matrix([ws[i] for i in T]) + HTT.pinv() * HTP * cP
            else:
                S_ex = HPP
            if not P:
                wT = sp.Matrix([ws[i] for i in T])
            delta = (cP.T * S_ex * cP)[0] / 2 if P else sp.Integer(0)
            exact.append(delta)
            mask = np.zeros(n, dtype=bool)
            mask[T] = True
            # pinv / LDLᵀ of matrices with condition ≲ 10³: 1e4·n·eps relative to max|H|·‖w‖²
            tol = 1e4 * n * EPS * scale
            tally.close(f"{label} Δ(T_{k}) schur", model.compensated_increase(mask), delta, rtol=0, atol=tol)
            tally.close(f"{label} Δ(T_{k}) LDLᵀ curve", model.magnitude_curve().compensated[k], delta, rtol=0, atol=tol)
            unc = (cP.T * HPP * cP)[0] / 2 if P else sp.Integer(0)
            tally.close(f"{label} uncompensated(T_{k})", model.uncompensated_increase(mask), unc, rtol=0, atol=tol)
            tally.close(f"{label} uncompensated curve k={k}", model.magnitude_curve().uncompensated[k], unc, rtol=0, atol=tol)
            if P and label == "PD":
                tally.close(f"{label} Δ(T_{k}) inverse", model.compensated_increase(mask, solver="inverse"), delta, rtol=0, atol=tol)
                Sl = model.schur_complement(mask)
                for a in range(len(P)):
                    for b in range(len(P)):
                        tally.close(f"S[{a},{b}] k={k}", Sl[a, b], S_ex[a, b], rtol=0, atol=tol)
            wl = model.compensated_weights(mask)
            tally.check(f"{label} w_P = 0 (k={k})", np.all(wl[~mask] == 0))
            for j, i in enumerate(T):
                tally.close(f"{label} compensated w[{i}] k={k}", wl[i], wT[j], rtol=0, atol=1e4 * n * EPS * float(max(abs(v) for v in ws)))
        tally.check(f"{label}: the singular case is not degenerate (Δ(T_4) = {float(exact[4]):.3g})",
                    label == "PD" or float(exact[4]) > 1e-3 * float(exact[0]))
        positive = [float(e) for e in exact if e > 0]
        for eps in (positive[1] * 0.999, positive[2] * 1.001, positive[-1] * 0.5, positive[0] * 2):
            want = next(k for k in range(n + 1) if all(float(e) <= eps for e in exact[k:]))
            for solver in ("ldl", "bisect"):
                got = model.magnitude_threshold(eps, solver=solver)
                tally.check(f"{label} threshold ε={eps:.4g} ({solver}): {got.kept_count} ≠ {want}", got.kept_count == want)
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/free-compression-two-atom",
    "§2: R_{(H⁻¹)_PP}(w) = R_{H⁻¹}(αw), α = 1−ρ (Nica–Speicher) ⇒ m_S = ρ s/(1−ρ), E[λ/(λ+s)] = ρ; "
    "pruning_limit(free) on one- and two-atom spectra, the negative policies, the zero mass, the curves",
    covers=(
        "theory.limits.pruning_limit#free",
        "theory.limits.pruning_limit#negative",
        "theory.limits.pruning_limit#zero_mass",
        "theory.limits.pruning_limit#curves",
        "theory.limits.magnitude_scaling",
    ),
)
def free_compression_symbolic() -> CheckResult:
    a, b, p, s = sp.symbols("a b p s", positive=True)
    z = sp.Symbol("z")
    G_X = p / (z - 1 / a) + (1 - p) / (z - 1 / b)  # Cauchy transform of X = H⁻¹ (atoms 1/a, 1/b)
    g = p * a / (a + s) + (1 - p) * b / (b + s)  # E[λ/(λ+s)]
    tally = Tally()
    # (i) z G_X(z) at z = −1/s is E[λ/(λ+s)]
    tally.check("z G_X(z) at −1/s", sp.simplify((z * G_X).subs(z, -1 / s) - g) == 0)
    rho = g
    alpha = 1 - rho
    u = G_X.subs(z, -1 / s)  # = G_X(z₀), so G_X⁻¹(u) = z₀ = −1/s on the branch (−∞, 0)
    w0 = u / alpha
    # (ii) subordination: G_Y⁻¹(w0) = R_X(αw0) + 1/w0 = G_X⁻¹(u) − 1/u + 1/w0 must vanish (G_Y(0) = w0)
    tally.check("subordination", sp.simplify(-1 / s - 1 / u + 1 / w0) == 0)
    # (iii) m_S = tr(Y⁻¹) = −G_Y(0) = −w0 = ρ s/(1 − ρ)
    tally.check("m_S = ρs/(1−ρ)", sp.simplify(-w0 - rho * s / (1 - rho)) == 0)
    dG = sp.diff(G_X, z)
    tally.check("G_X' < 0 on (−∞, 0)", all(float(dG.subs({a: 1.3, b: 4.0, p: 0.4, z: zz})) < 0 for zz in np.linspace(-50, -1e-3, 40)))

    from theory.limits import magnitude_scaling, pruning_limit
    from theory.spectrum import Spectrum

    with mp.workdps(_DPS):
        # one atom λ, N equal weights: m_S ≡ λ, so ½(1−ρ)N λ = ε, ρ* = 1 − 2ε/(λN)
        for lam, N, eps in ((2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)):
            r = pruning_limit(np.full(N, lam), np.ones(N), eps, method="free")
            ref = 1 - 2 * mp.mpf(eps) / (mp.mpf(lam) * N)
            tally.close(f"free one atom λ={lam},N={N}", r.kept_fraction, ref, rtol=1e-10)
            tally.close(f"predicted = ε (λ={lam})", r.predicted_increase, eps, rtol=1e-9)
            tally.close(f"s(ρ*) = λ(1−ρ)/ρ (λ={lam})", r.s, lam * (1 - ref) / ref, rtol=1e-9)
            for c in (1.0, 2.0, 3.5):
                rc = magnitude_scaling(np.full(N, lam), np.ones(N), eps, factors=(c,), method="free")[0]
                tally.close(f"magnitude scaling c={c}", rc.kept_fraction, max(1 - 2 * mp.mpf(eps) / (lam * N * c * c), 0), rtol=1e-10, atol=1e-12)
        # two atoms with unequal weights (kinks in R²), one probe, against the reference root
        rng = np.random.default_rng(30)
        for (l1, l2, n1, n2), eps in (((0.3, 4.0, 60, 40), 0.05), ((1.0, 9.0, 10, 90), 0.5), ((0.05, 2.0, 150, 50), 0.01)):
            N = n1 + n2
            lam = np.array([l1] * n1 + [l2] * n2)
            w = 0.1 * rng.laplace(size=N)
            ref = _Ref([_atoms((l1, l2), (n1, n2))], w, eps)
            rho = ref.free()
            r = pruning_limit(lam, w, eps, method="free", n_curve=11)
            tally.close(f"free two atoms ({l1},{l2})", r.kept_fraction, rho, rtol=1e-10)
            tally.close(f"s(ρ*) two atoms ({l1},{l2})", r.s, ref.s(rho), rtol=1e-8)
            tally.close(f"R(ρ*) two atoms ({l1},{l2})", r.R, mp.sqrt(ref.R2(rho)), rtol=1e-9)
            tally.close(f"rank/mean ({l1},{l2})", r.mean_eigenvalue, ref.mean, rtol=8 * EPS)
            for i, rr in enumerate(r.curves.kept_fraction[1:-1], start=1):
                rr = mp.mpf(rr)
                s_ref = ref.s(rr)
                tally.close(f"curve s({float(rr):.1f})", r.curves.s[i], s_ref, rtol=1e-10)
                tally.close(f"curve Δ({float(rr):.1f})", r.curves.loss_increase[i], ref.R2(rr) * rr * s_ref / (1 - rr) / 2, rtol=1e-10)
                tally.close(f"curve R({float(rr):.1f})", r.curves.R[i], mp.sqrt(ref.R2(rr)), rtol=1e-12)
            rf = pruning_limit(lam, w, eps, method="flat", n_curve=11)
            for i, rr in enumerate(rf.curves.kept_fraction[1:-1], start=1):
                rr = mp.mpf(rr)
                tally.close(f"flat curve ½R²s({float(rr):.1f})", rf.curves.loss_increase[i], ref.R2(rr) * ref.s(rr) / 2, rtol=1e-10)
        # negative-eigenvalue policies and the zero mass on atoms (−2: 20, 1: 50, 4: 30)
        lam = np.array([-2.0] * 20 + [1.0] * 50 + [4.0] * 30)
        w = 0.2 * rng.laplace(size=100)
        eps = 0.05
        measures = {
            "abs": _atoms((2, 1, 4), (20, 50, 30)),
            "clip": _atoms((0, 1, 4), (20, 50, 30)),
            "drop": _atoms((1, 4), (50, 30)),
        }
        for policy, meas in measures.items():
            for method in ("free", "flat"):
                ref = _Ref([meas], w, eps)
                want = ref.free() if method == "free" else ref.flat()
                got = pruning_limit(lam, w, eps, method=method, negative=policy, n_curve=0)
                tally.close(f"{method} negative={policy}", got.kept_fraction, want, rtol=1e-10)
                tally.close(f"negative mass ({policy})", got.negative_mass, mp.mpf(1) / 5, rtol=4 * EPS)
        pos = np.array([1.0] * 50 + [4.0] * 30)
        spec = Spectrum(pos[None, :], np.full((1, 80), 1 / 80), 100, exact=True)
        for z in (0.2, 0.6):
            meas = [(mp.mpf(0), mp.mpf(z))] + [(l, (1 - mp.mpf(z)) * q) for l, q in _atoms((1, 4), (50, 30))]
            for method in ("free", "flat"):
                ref = _Ref([meas], w, eps)
                want = ref.free() if method == "free" else ref.flat()
                got = pruning_limit(spec, w, eps, method=method, zero_mass=z, n_curve=0)
                tally.close(f"{method} zero_mass={z}", got.kept_fraction, want, rtol=1e-10)
                tally.close(f"rank fraction zero_mass={z}", got.rank_fraction, 1 - mp.mpf(z), rtol=4 * EPS)
    return tally.result()


@check(
    "limits/free-compression-haar",
    "§2: tr([(H⁻¹)_PP]⁻¹)/|P| → ρ s(ρ)/(1−ρ) for a Haar eigenbasis, with s(ρ) from pruning_limit's curves; "
    "½c_PᵀSc_P ≈ ½‖c‖² m_S for generic c",
    covers=("theory.limits.pruning_limit#free", "theory.limits.pruning_limit#curves"),
)
def free_compression_haar() -> CheckResult:
    from numerics.testing import haar_orthogonal
    from theory.limits import pruning_limit

    rng = np.random.default_rng(1)
    n = 400
    lam = np.where(np.arange(n) < n // 2, 1.0, 5.0)  # two atoms, p = ½
    Q = haar_orthogonal(n, rng)
    Hinv = (Q / lam[None, :]) @ Q.T
    curves = pruning_limit(lam, np.ones(n), 1.0, method="free", n_curve=11).curves  # s(ρ) at ρ = 0, 0.1, …, 1
    tally = Tally()
    details = []
    for i in (2, 5, 8):
        rho = float(curves.kept_fraction[i])
        m_pred = rho * curves.s[i] / (1 - rho)
        P = rng.permutation(n)[: int(round((1 - rho) * n))]
        S = np.linalg.inv(Hinv[np.ix_(P, P)])
        m_emp = np.trace(S) / P.size
        c = rng.standard_normal(P.size)
        quad = c @ S @ c / (c @ c)
        rel, rel_c = abs(m_emp - m_pred) / m_pred, abs(quad - m_pred) / m_pred
        # tolerances: O(1/n) finite-size bias for the trace (2 %), and the O(1/√n) fluctuation of a
        # random quadratic form (‖S‖_F/(tr S)·√2 ≈ 0.06 here, 3 standard deviations ≈ 15 %)
        tally.check(f"ρ={rho:.1f}: m_S {m_emp:.4f} vs {m_pred:.4f}", rel < 0.02)
        tally.check(f"ρ={rho:.1f}: cᵀSc/‖c‖² {quad:.4f} vs {m_pred:.4f}", rel_c < 0.15)
        details.append(f"ρ={rho:.1f}: m_S {m_emp:.4f} vs {m_pred:.4f}")
    return tally.result("; ".join(details))


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/flat-is-free-without-factor",
    "§2: ρ = E[λR²/(λR²+2ε)] ⇔ ½R² s(ρ) = ε (free condition without ρ/(1−ρ)); equal at ρ = ½; pruning_limit(flat) "
    "on one- and two-atom spectra against the reference fixed point",
    covers=("theory.limits.pruning_limit#flat", "theory.limits.MagnitudeProfile.R2"),
)
def flat_vs_free() -> CheckResult:
    lam, R, eps = sp.symbols("lambda R epsilon", positive=True)
    s = 2 * eps / R**2  # ½R²s = ε
    tally = Tally()
    tally.check("per-atom identity", sp.simplify(lam / (lam + s) - lam * R**2 / (lam * R**2 + 2 * eps)) == 0)
    rho = sp.Symbol("rho", positive=True)
    tally.check("ρ/(1−ρ) = 1 at ½", (rho / (1 - rho)).subs(rho, sp.Rational(1, 2)) == 1)
    from theory.limits import MagnitudeProfile, _apply_policy, _solve_s, pruning_limit
    from theory.spectrum import Spectrum

    rng = np.random.default_rng(2)
    ev = rng.exponential(1.0, 400)
    w = 0.1 * rng.laplace(size=400)
    e = 0.05
    res = pruning_limit(ev, w, e, method="flat")
    meas, _ = _apply_policy(Spectrum.from_eigenvalues(ev), "abs", 0.0)
    cond = 0.5 * MagnitudeProfile(w).R2(res.kept_fraction) * _solve_s(meas, res.kept_fraction)
    tally.close("½R²s at the flat ρ* = ε", cond, e, rtol=1e-8)
    with mp.workdps(_DPS):
        # one atom, N unit weights: ρ(λN(1−ρ) + 2ε) = λN(1−ρ), the smaller root of λNρ² − (2λN + 2ε)ρ + λN
        for lam_, N, eps_ in ((2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)):
            A, Bq = mp.mpf(lam_) * N, -(2 * mp.mpf(lam_) * N + 2 * mp.mpf(eps_))
            ref = (-Bq - mp.sqrt(Bq * Bq - 4 * A * A)) / (2 * A)
            tally.close(f"flat one atom λ={lam_},N={N}", pruning_limit(np.full(N, lam_), np.ones(N), eps_, method="flat").kept_fraction,
                        ref, rtol=1e-10)
        for (l1, l2, n1, n2), eps_ in (((0.3, 4.0, 60, 40), 0.05), ((1.0, 9.0, 10, 90), 0.5)):
            N = n1 + n2
            w2 = 0.1 * rng.laplace(size=N)
            ref = _Ref([_atoms((l1, l2), (n1, n2))], w2, eps_)
            r = pruning_limit(np.array([l1] * n1 + [l2] * n2), w2, eps_, method="flat", n_curve=0)
            rho_ref = ref.flat()
            tally.close(f"flat two atoms ({l1},{l2})", r.kept_fraction, rho_ref, rtol=1e-10)
            tally.close(f"flat predicted ½R²s ({l1},{l2})", r.predicted_increase, ref.R2(rho_ref) * ref.s(rho_ref) / 2, rtol=1e-8)
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/ellipsoid-cone-slopes",
    "§2: cone over ellipsoid with axis r₀ along c (‖c‖=R) is elliptic with slopes r_i/√(R²−r₀²) → r_i/R; "
    "QuadraticModel.cone_basis / cone_projection against those slopes and the 40-digit elliptic projection",
    covers=("theory.quadratic.QuadraticModel.cone_basis", "theory.quadratic.QuadraticModel.cone_projection"),
)
def ellipsoid_cone() -> CheckResult:
    r0, r1, r2, R = sp.symbols("r0 r1 r2 R", positive=True)
    A = sp.diag(1 / r0**2, 1 / r1**2, 1 / r2**2)
    c = sp.Matrix([R, 0, 0])
    cAc = (c.T * A * c)[0]
    # K = {x : cᵀAx ≥ 0, xᵀQx ≥ 0},  Q = Ac cᵀA − (cᵀAc − 1)A  (min over τ of (x−τc)ᵀA(x−τc) − τ²)
    Q = A * c * c.T * A - (cAc - 1) * A
    q0, q1 = Q[0, 0], Q[1, 1]  # Q is diagonal in this basis (checked below)
    slope1 = sp.sqrt(q0 / -q1)
    tally = Tally()
    tally.check("slopes r_i/√(R²−r₀²)", sp.simplify(q0 / -q1 - r1**2 / (R**2 - r0**2)) == 0 and Q.is_diagonal())
    tally.check("r₀ → 0 limit r_i/R", sp.simplify(sp.limit(slope1, r0, 0) - r1 / R) == 0)
    x = sp.Matrix(sp.symbols("x0 x1 x2"))
    tau = sp.Symbol("tau")
    f = ((x - tau * c).T * A * (x - tau * c))[0] - tau**2
    tstar = (c.T * A * x)[0] / (cAc - 1)
    tally.check("τ* stationary", sp.simplify(sp.diff(f, tau).subs(tau, tstar)) == 0)
    tally.check("min value", sp.simplify(f.subs(tau, tstar) - (-(x.T * Q * x)[0] / (cAc - 1))) == 0)

    from proofs_check.geometry import _elliptic_project_ref
    from theory.quadratic import QuadraticModel

    with mp.workdps(_DPS):
        # diagonal H, only coordinate 0 pruned: c = R e₀, r_i = √(2ε/λ_i), slopes r_i/√(R² − r₀²)
        for lams, Rv, eps in (([4.0, 1.0, 2.0, 9.0], 0.5, 0.1), ([0.5, 3.0, 0.2, 1.5, 7.0], -0.8, 0.05)):
            n = len(lams)
            w = np.array([Rv] + [2.0 + i for i in range(n - 1)])  # |R| the smallest: T_{n−1} prunes coordinate 0
            model = QuadraticModel(np.diag(lams), w)
            kept = model.magnitude_support(n - 1)
            slopes, U = model.cone_basis(kept, eps)
            r2 = [2 * mp.mpf(eps) / mp.mpf(v) for v in lams]
            ref = sorted(mp.sqrt(r2[i] / (mp.mpf(Rv) ** 2 - r2[0])) for i in range(1, n))
            for j, (got, want) in enumerate(zip(sorted(slopes), ref)):
                # eigh of a diagonal-plus-rank-one 4×4: 64·eps relative
                tally.close(f"slope {j} (λ={lams})", got, want, rtol=64 * n * EPS)
            tally.check("axis towards c", U[:, 0] @ (np.sign(Rv) * np.eye(n)[0]) > 0.999999)
            # projection in the original coordinates: axis sign(R)·e₀, transverse slopes per coordinate
            sl = [mp.sqrt(r2[i] / (mp.mpf(Rv) ** 2 - r2[0])) for i in range(1, n)]
            rng = np.random.default_rng(31)
            for _ in range(6):
                xv = rng.standard_normal(n)
                ref_p = _elliptic_project_ref(np.concatenate([[np.sign(Rv) * xv[0]], xv[1:]]), sl)
                ref_p[0] *= int(np.sign(Rv))
                got = model.cone_projection(kept, eps, xv)
                for j in range(n):
                    tally.close(f"cone projection [{j}] (λ={lams})", got[j], ref_p[j], rtol=0,
                                atol=256 * n * EPS * float(np.linalg.norm(xv)))
    # general position: points τ(c + e) with e on the ellipsoid are inside the library's cone; rays along the
    # cone boundary touch the ellipsoid; rays outside miss it
    rng = np.random.default_rng(3)
    n = 6
    M = rng.standard_normal((n, n))
    H = M @ M.T + 0.5 * np.eye(n)
    eps = 0.05
    w = np.array([10.0, -12.0, 11.0, 0.9, -1.1, 1.0])  # prune the three small ones: cᵀHc/(2ε) > 1
    model = QuadraticModel(H, w)
    kept = model.magnitude_support(3)
    cn = np.where(kept, 0.0, w)
    slopes, U = model.cone_basis(kept, eps)
    An = H / (2 * eps)
    cAc_n = cn @ An @ cn
    L = np.linalg.cholesky(np.linalg.inv(An))  # e = L v with ‖v‖ ≤ 1 is in the ellipsoid

    def min_dist(x: np.ndarray) -> float:  # min_τ (τx − c)ᵀA(τx − c), independent 1-D minimisation
        return cAc_n - (x @ An @ cn) ** 2 / (x @ An @ x) if x @ An @ cn > 0 else np.inf

    worst_in, worst_tan, worst_out = np.inf, 0.0, np.inf
    for _ in range(50):
        v = rng.standard_normal(n)
        v *= rng.uniform(0, 1) / np.linalg.norm(v)
        y = U.T @ (rng.uniform(0.1, 3.0) * (cn + L @ v))
        worst_in = min(worst_in, (y[0] - np.linalg.norm(y[1:] / slopes)) / np.linalg.norm(y))
        zz = rng.standard_normal(n - 1)
        yb = np.concatenate([[np.linalg.norm(zz / slopes)], zz])
        worst_tan = max(worst_tan, abs(min_dist(U @ yb) - 1.0))
        yo = np.concatenate([[0.9 * yb[0]], zz])
        worst_out = min(worst_out, min_dist(U @ yo) - 1.0)
    tally.check(f"inside margin {worst_in:.1e}", worst_in >= -1e-12)
    tally.check(f"tangency residual {worst_tan:.1e}", worst_tan < 1e-8)
    tally.check(f"outside gap {worst_out:.1e}", worst_out > 0)
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/threshold-uniqueness",
    "§2: m_S(ρ) = ρs/(1−ρ) non-increasing ((A/B)' = Var(v)/(u²B²), u = 1/s); flat T(ρ) non-increasing; the "
    "library's free curve is non-increasing",
    covers=("theory.limits.pruning_limit#free", "theory.limits.pruning_limit#curves"),
)
def uniqueness() -> CheckResult:
    u = sp.Symbol("u", positive=True)
    lams = sp.symbols("l1 l2 l3", positive=True)
    ps = sp.symbols("p1 p2", positive=True)
    pr = [ps[0], ps[1], 1 - ps[0] - ps[1]]
    E = lambda f: sum(pi * f(li) for pi, li in zip(pr, lams))  # noqa: E731
    A = E(lambda l: 1 / (1 + l * u))  # 1 − ρ
    B = E(lambda l: l / (1 + l * u))  # ρ s  (so 1/m_S = A/B)
    v = lambda l: 1 - 1 / (1 + l * u)  # noqa: E731
    var_v = E(lambda l: v(l) ** 2) - E(v) ** 2
    tally = Tally()
    tally.check("(A/B)' = Var(v)/(u²B²)", sp.simplify(sp.diff(A / B, u) - var_v / (u**2 * B**2)) == 0)
    tally.check("ρ(u) increasing", sp.simplify(sp.diff(E(lambda l: l * u / (1 + l * u)), u) - E(lambda l: l / (1 + l * u) ** 2)) == 0)
    lam, R2, eps = sp.symbols("lambda R2 epsilon", positive=True)
    tally.check("flat T increasing in R²", sp.simplify(
        sp.diff(lam * R2 / (lam * R2 + 2 * eps), R2) - 2 * eps * lam / (lam * R2 + 2 * eps) ** 2) == 0)
    from theory.limits import pruning_limit

    rng = np.random.default_rng(4)
    ev = np.concatenate([rng.exponential(0.05, 140), rng.exponential(5.0, 60), np.zeros(100)])
    res = pruning_limit(ev, 0.1 * rng.laplace(size=300), 0.05, method="free", n_curve=120)
    inc = res.curves.loss_increase
    tally.check("free curve non-increasing", bool(np.all(np.diff(inc) <= 1e-12 * inc[0])))
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
def _random_spectra(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        ev = rng.exponential(rng.uniform(0.1, 3.0), 200) * (rng.uniform(size=200) < rng.uniform(0.3, 1.0))
        w = rng.laplace(size=200) * rng.uniform(0.01, 0.3)
        yield ev, w, float(10 ** rng.uniform(-3, 0.5))


@check(
    "limits/sharpness-bound",
    "§2: by concavity of λ ↦ λR²/(λR²+2ε), ρ* ≤ Tr(H)R²/(Tr(H)R² + 2εD); equality for one atom; pinned on "
    "two-atom spectra; the inequality over random spectra",
    covers=("theory.limits.pruning_limit#sharpness_bound",),
)
def sharpness_bound() -> CheckResult:
    lam, R, eps = sp.symbols("lambda R epsilon", positive=True)
    f = lam * R**2 / (lam * R**2 + 2 * eps)
    tally = Tally()
    tally.check("f'' = −4εR⁴/(λR²+2ε)³ < 0", sp.simplify(sp.diff(f, lam, 2) + 4 * eps * R**4 / (lam * R**2 + 2 * eps) ** 3) == 0)
    from theory.limits import pruning_limit

    with mp.workdps(_DPS):
        for lam_, N, eps_ in ((2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)):
            flat = pruning_limit(np.full(N, lam_), np.ones(N), eps_, method="flat", n_curve=0)
            # one atom: Jensen is an equality, the bound is the flat fixed point itself
            tally.close(f"one atom: bound = flat ρ* (λ={lam_})", flat.sharpness_bound, flat.kept_fraction, rtol=1e-10)
            A, Bq = mp.mpf(lam_) * N, -(2 * mp.mpf(lam_) * N + 2 * mp.mpf(eps_))
            tally.close(f"one atom: bound closed form (λ={lam_})", flat.sharpness_bound,
                        (-Bq - mp.sqrt(Bq * Bq - 4 * A * A)) / (2 * A), rtol=1e-10)
        rng = np.random.default_rng(32)
        for (l1, l2, n1, n2), eps_ in (((0.3, 4.0, 60, 40), 0.05), ((1.0, 9.0, 10, 90), 0.5), ((0.0, 2.0, 50, 50), 0.02)):
            N = n1 + n2
            w = 0.1 * rng.laplace(size=N)
            ref = _Ref([_atoms((l1, l2), (n1, n2))], w, eps_)
            for method in ("flat", "free"):
                r = pruning_limit(np.array([l1] * n1 + [l2] * n2), w, eps_, method=method, n_curve=0)
                tally.close(f"bound at the {method} ρ* ({l1},{l2})", r.sharpness_bound, ref.sharpness(mp.mpf(r.kept_fraction)), rtol=1e-12)
            tally.check(f"flat ρ* ≤ bound ({l1},{l2})", ref.flat() <= ref.sharpness(ref.flat()))
    worst = -np.inf
    for ev, w, eps_ in _random_spectra(5, 20):
        res = pruning_limit(ev, w, eps_, method="flat", n_curve=0)
        worst = max(worst, res.kept_fraction - res.sharpness_bound)
    tally.check(f"max(ρ* − bound) over 20 spectra = {worst:.2e} ≤ 1e-10", worst <= 1e-10)
    return tally.result()


@check(
    "limits/uncompensated-bound",
    "§2.1: least ρ with ½R(ρ)² Tr(H)/D ≤ ε; = the free ρ* for one atom (m_S ≡ λ); ≥ the free ρ* since "
    "m_S(ρ) ≤ m_S(0) = Tr(H)/D",
    covers=("theory.limits.pruning_limit#uncompensated_bound",),
)
def uncompensated_bound() -> CheckResult:
    from theory.limits import pruning_limit

    tally = Tally()
    with mp.workdps(_DPS):
        for lam_, N, eps_ in ((2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)):
            r = pruning_limit(np.full(N, lam_), np.ones(N), eps_, method="free", n_curve=0)
            tally.close(f"one atom: bound = 1 − 2ε/(λN) (λ={lam_})", r.uncompensated_bound, 1 - 2 * mp.mpf(eps_) / (lam_ * N), rtol=1e-10)
            tally.close(f"one atom: bound = free ρ* (λ={lam_})", r.uncompensated_bound, r.kept_fraction, rtol=1e-10)
        rng = np.random.default_rng(33)
        for (l1, l2, n1, n2), eps_ in (((0.3, 4.0, 60, 40), 0.05), ((1.0, 9.0, 10, 90), 0.5), ((0.0, 2.0, 50, 50), 0.02)):
            N = n1 + n2
            w = 0.1 * rng.laplace(size=N)  # unequal weights: R² has kinks
            ref = _Ref([_atoms((l1, l2), (n1, n2))], w, eps_)
            r = pruning_limit(np.array([l1] * n1 + [l2] * n2), w, eps_, n_curve=0)
            tally.close(f"bound ({l1},{l2})", r.uncompensated_bound, ref.uncompensated(), rtol=1e-10)
        big = pruning_limit(np.full(10, 1.0), 1e-3 * np.ones(10), 1.0, n_curve=0)
        tally.check("½‖w‖²E[λ] ≤ ε gives 0", big.uncompensated_bound == 0.0)
    worst = -np.inf
    for ev, w, eps_ in _random_spectra(6, 20):
        res = pruning_limit(ev, w, eps_, method="free", n_curve=0)
        worst = max(worst, res.kept_fraction - res.uncompensated_bound)
    tally.check(f"max(free ρ* − bound) over 20 spectra = {worst:.2e} ≤ 1e-10", worst <= 1e-10)
    return tally.result()


@check(
    "limits/bands",
    "§2 (ours): kept_fraction_lower = ρ* − 1/D − z·se − a_η/√D, kept_fraction_upper = ρ* + z·se + a_η/√D "
    "(z = 2, clipped to [0, 1]; D = N for the prunable space)",
    covers=("theory.limits.pruning_limit#bands",),
)
def bands() -> CheckResult:
    from theory.limits import pruning_limit
    from theory.spectrum import Spectrum

    tally = Tally()
    with mp.workdps(_DPS):
        for N, D, eta, space in ((400, 400, 0.01, "prunable"), (2500, 2500, 0.2, "prunable"), (400, 900, 0.05, "all"),
                                 (10_000, 10_000, 1e-4, "prunable")):
            lam_, eps_ = 2.0, 2.0 * N / 4  # ρ* = 1 − 2ε/(λN) = ½
            r = pruning_limit(np.full(D, lam_), np.ones(N), eps_, method="free", eta=eta, hessian_space=space, n_curve=0)
            rho = 1 - 2 * mp.mpf(eps_) / (lam_ * N)
            a = mp.sqrt(8 * mp.log(4 / mp.mpf(eta)))
            lo, hi = rho - 1 / mp.mpf(D) - a / mp.sqrt(D), rho + a / mp.sqrt(D)
            tally.check(f"no clipping N={N} D={D}", 0 < lo and hi < 1)
            tally.close(f"lower N={N} D={D} η={eta}", r.kept_fraction_lower, lo, rtol=1e-10)
            tally.close(f"upper N={N} D={D} η={eta}", r.kept_fraction_upper, hi, rtol=1e-10)
            tally.check("lower ≤ ρ* ≤ upper", r.kept_fraction_lower <= r.kept_fraction <= r.kept_fraction_upper)
        # with SLQ probes: the standard error enters with z = 2 (reference stderr from the closed form)
        N, eps_ = 900, 198.0  # ρ* ≈ 0.6
        spec = Spectrum(np.array([[1.0], [1.2]]), np.array([[1.0], [1.0]]), N)
        ref = _Ref([[(1, 1)], [(mp.mpf("1.2"), 1)]], np.ones(N), eps_)
        for method in ("flat", "free"):
            r = pruning_limit(spec, np.ones(N), eps_, method=method, n_curve=0)
            rho = mp.mpf(r.kept_fraction)
            se = ref.stderr_flat(rho) if method == "flat" else ref.stderr_free(rho)
            a = mp.sqrt(8 * mp.log(400))
            # se to ≈ 1e-9 relative (central differences, see limits/delta-method-stderr)
            tally.close(f"{method} lower with se", r.kept_fraction_lower, rho - 1 / mp.mpf(N) - 2 * se - a / 30, rtol=1e-9)
            tally.close(f"{method} upper with se", r.kept_fraction_upper, rho + 2 * se + a / 30, rtol=1e-9)
        # clipping at the ends
        r = pruning_limit(np.full(16, 1.0), np.ones(16), 100.0, method="free", n_curve=0)
        tally.check("ρ* = 0 clips the lower band at 0", r.kept_fraction == 0.0 and r.kept_fraction_lower == 0.0)
        r = pruning_limit(np.full(16, 50.0), np.ones(16), 1e-6, method="flat", n_curve=0)
        tally.check("upper band clipped at 1", r.kept_fraction_upper == 1.0)
    return tally.result()


@check(
    "limits/delta-method-stderr",
    "§2: se(ρ*) = se(T)/(1 − T'(ρ*)) (flat), se(ρ*) = se(g)/(s E[λ/(λ+s)²]) / |d log Δ/dρ| (free), from the "
    "per-probe values; two probes with one atom each against the analytic derivatives",
    covers=("theory.limits.pruning_limit#stderr",),
)
def delta_method_stderr() -> CheckResult:
    from theory.limits import pruning_limit
    from theory.spectrum import Spectrum

    tally = Tally()
    rng = np.random.default_rng(34)
    with mp.workdps(_DPS):
        # ρ* away from 1 and from the rank: the library's central differences (h = 1e-5) have a truncation error
        # ≈ (h/(1 − ρ*))², which reaches 1.7e-4 relative at ρ* = 0.9996 (harmless for a standard error)
        for (l1, l2, l3), N, eps_, unit in (((1.0, 3.0, None), 900, 302.0, True), ((0.5, 2.0, 4.0), 600, 0.05, False),
                                           ((2.0, 2.5, None), 300, 0.01, False)):
            atoms = [a for a in (l1, l2, l3) if a is not None]
            spec = Spectrum(np.array([[a] for a in atoms]), np.ones((len(atoms), 1)), N)
            w = np.ones(N) if unit else 0.1 * rng.laplace(size=N)
            ref = _Ref([[(a, 1)] for a in atoms], w, eps_)
            for method in ("flat", "free"):
                r = pruning_limit(spec, w, eps_, method=method, n_curve=0)
                rho = mp.mpf(r.kept_fraction)
                want = ref.stderr_flat(rho) if method == "flat" else ref.stderr_free(rho)
                # central differences with h = 1e-5: truncation h²|f'''|/6 and rounding eps|f|/h, both ≲ 1e-10
                # relative to f' here; 1e-8 leaves a factor 100 (a wrong formula is off by O(1))
                tally.close(f"{method} se atoms={atoms}", r.stderr, want, rtol=1e-8)
                tally.close(f"{method} ρ* atoms={atoms}", r.kept_fraction, ref.free() if method == "free" else ref.flat(), rtol=1e-10)
        exact = pruning_limit(np.full(50, 2.0), np.ones(50), 0.1, n_curve=0)
        single = pruning_limit(Spectrum(np.array([[2.0]]), np.ones((1, 1)), 50), np.ones(50), 0.1, n_curve=0)
        tally.check("exact spectrum: se = 0; one probe: se = ∞", exact.stderr == 0.0 and math.isinf(single.stderr))
    return tally.result()


@check(
    "limits/haar-magnitude-limit",
    "§2.2 (ours): E[w_Pᵀ Q Λ Qᵀ w_P] = ‖w_P‖² tr(Λ)/N for Haar Q (exact for N = 2, Monte Carlo for N = 6); the "
    "least ρ with ½R(ρ)² m ≤ ε, m = tr(H)/N signed; its delta-method stderr 2ε/m² · se(m)/|dR²/dρ|",
    covers=("theory.limits.haar_magnitude_limit", "theory.limits.haar_magnitude_limit#stderr"),
)
def haar_magnitude_limit_check() -> CheckResult:
    th, w1, w2, l1, l2 = sp.symbols("theta w1 w2 l1 l2", real=True)
    tally = Tally()
    # N = 2: Haar on O(2) = rotations by a uniform angle (and reflections, which give the same average)
    Q = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])
    w = sp.Matrix([w1, w2])
    quad = (w.T * Q * sp.diag(l1, l2) * Q.T * w)[0]
    avg = sp.integrate(quad, (th, 0, 2 * sp.pi)) / (2 * sp.pi)
    tally.check("N = 2: E[wᵀQΛQᵀw] = ‖w‖²(λ₁+λ₂)/2", sp.simplify(avg - (w1**2 + w2**2) * (l1 + l2) / 2) == 0)
    from numerics.testing import haar_orthogonal
    from theory.limits import haar_magnitude_limit, pruning_limit
    from theory.spectrum import Spectrum

    rng = np.random.default_rng(36)
    lam = np.array([3.0, -1.0, 0.5, 2.0, 0.0, 4.5])
    wv = rng.standard_normal(6)
    vals = np.array([wv @ (Qm * lam) @ Qm.T @ wv for Qm in (haar_orthogonal(6, rng) for _ in range(20000))])
    want = float(wv @ wv) * lam.mean()
    se = float(vals.std(ddof=1) / math.sqrt(vals.size))
    tally.check(f"N = 6 Monte Carlo {vals.mean():.4f} vs ‖w‖² tr Λ/N {want:.4f} ± 4·{se:.4f}", abs(vals.mean() - want) <= 4 * se)
    with mp.workdps(_DPS):
        for lam_, N, eps_ in ((2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)):
            r = haar_magnitude_limit(np.full(N, lam_), np.ones(N), eps_)
            tally.close(f"one atom ρ* (λ={lam_})", r.kept_fraction, 1 - 2 * mp.mpf(eps_) / (lam_ * N), rtol=1e-10)
            tally.close(f"one atom predicted = ε (λ={lam_})", r.predicted_increase, eps_, rtol=1e-9)
        # a signed spectrum (negative mass lowers m; no policy applies), unequal weights
        for atoms, counts, eps_ in (((-1.0, 0.5, 4.0), (20, 50, 30), 0.05), ((2.0, 9.0), (60, 40), 0.4)):
            N = sum(counts)
            ev = np.concatenate([np.full(c, a) for a, c in zip(atoms, counts)])
            wts = 0.1 * rng.laplace(size=N)
            ref = _Ref([_atoms(atoms, counts)], wts, eps_)
            m = ref.mean
            rho = _root(lambda x: ref.R2(x) * m / 2 - eps_, mp.mpf(0), mp.mpf(1)) if ref.cum[-1] * m / 2 > eps_ else mp.mpf(0)
            r = haar_magnitude_limit(ev, wts, eps_)
            tally.close(f"ρ* atoms={atoms}", r.kept_fraction, rho, rtol=1e-10)
            tally.close(f"signed mean atoms={atoms}", r.mean_eigenvalue, m, rtol=16 * EPS)
            tally.close(f"R(ρ*) atoms={atoms}", r.R, mp.sqrt(ref.R2(rho)), rtol=1e-9)
            if all(a >= 0 for a in atoms):  # the same formula as pruning_limit's uncompensated bound
                tally.close(f"= uncompensated bound atoms={atoms}", r.kept_fraction,
                            pruning_limit(ev, wts, eps_, n_curve=0).uncompensated_bound, rtol=1e-10)
        tally.check("m ≤ 0 gives 0", haar_magnitude_limit(np.array([-1.0, 0.5]), np.ones(2), 0.1).kept_fraction == 0.0)
        # stderr: two probes with one atom each, unit weights (R² = (1 − ρ)N, dR²/dρ = −N)
        N, eps_ = 500, 60.0
        spec = Spectrum(np.array([[1.0], [1.4]]), np.ones((2, 1)), N)
        r = haar_magnitude_limit(spec, np.ones(N), eps_)
        m, m_se = mp.mpf("1.2"), mp.mpf("0.2")  # mean and |λ₁ − λ₂|/2
        tally.close("ρ* with probes", r.kept_fraction, 1 - 2 * eps_ / (m * N), rtol=1e-10)
        tally.close("se(m)", r.mean_eigenvalue_stderr, m_se, rtol=64 * EPS)
        # dR²/dρ by a central difference of a linear function: exact up to rounding (h = 1e-6: eps/h ≈ 1e-10)
        tally.close("delta-method stderr", r.stderr, 2 * eps_ / (m * m) * m_se / N, rtol=1e-8)
    return tally.result()


@check(
    "limits/taylor-magnitude-limit",
    "§2.1 (ours): the least kept count k with ΔL(k) = −g_Pᵀw_P + ½w_PᵀHw_P ≤ ε for magnitude supports, against "
    "exact rational ΔL for every k (monotone case), and its gradient and curvature terms at the limit",
    covers=("nets.limit.predict.taylor_magnitude_limit",),
)
def taylor_magnitude_limit_check() -> CheckResult:
    import torch

    from nets.limit.predict import taylor_magnitude_limit
    from numerics.operators import DenseOperator

    tally = Tally()
    B = sp.Matrix([[2, -1, 0, 1, 3, 0, 1], [1, 1, -2, 0, 1, 2, 0], [0, 2, 1, -1, 0, 1, 1], [1, 0, 1, 2, -1, 0, 2],
                   [-1, 1, 0, 1, 2, 1, 0], [0, 0, 1, 1, 0, 2, 1], [1, 1, 1, 0, 0, 1, 2]])
    H = B.T * B / 4
    w = [sp.Rational(v, 8) for v in (17, -15, 13, 11, -9, 7, 5)]  # distinct magnitudes, decreasing
    g = [sp.Rational(v, 64) for v in (1, -2, 0, 1, 3, -1, 2)]
    n = len(w)
    dl = []
    for k in range(n + 1):
        P = list(range(k, n))
        wP = sp.Matrix([w[i] for i in P]) if P else sp.zeros(0, 1)
        lin = -sum(g[i] * w[i] for i in P)
        quad = (wP.T * H.extract(P, P) * wP)[0] / 2 if P else sp.Integer(0)
        dl.append((lin, quad))
    total = [a + b for a, b in dl]
    tally.check("ΔL non-increasing in k (the search assumes it)", all(total[k] >= total[k + 1] for k in range(n)))
    op = DenseOperator(torch.tensor(np.array(H, dtype=float)))
    wt = torch.tensor([float(v) for v in w], dtype=torch.float64)
    gt = torch.tensor([float(v) for v in g], dtype=torch.float64)
    for eps in [float(total[k]) * f for k in range(n) for f in (0.999, 1.001)] + [float(total[0]) * 2]:
        want = next(k for k in range(n + 1) if all(float(t) <= eps for t in total[k:]))
        for step in (0.05, 0.5):
            r = taylor_magnitude_limit(op, gt, wt, eps, grid_step=step)
            tally.check(f"k* at ε={eps:.5g} (grid {step}): {r.kept_count} ≠ {want}", r.kept_count == want)
            if want < n:
                tally.close(f"gradient term at k*={want}", r.gradient_term, dl[want][0], rtol=0, atol=64 * EPS)
                tally.close(f"curvature term at k*={want}", r.curvature_term, dl[want][1], rtol=0, atol=64 * n * EPS * 40)
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/magnitude-profile-and-kept-count",
    "§2: R(ρ)² = C((1−ρ)N) with C the cumulative sum of sorted w² interpolated linearly; kept_count(ρ, n) = "
    "⌈ρn⌉ of the decimal ρ (float ulps above an integer removed, a genuine excess kept); LOMP keeps that many",
    covers=(
        "theory.limits.MagnitudeProfile.R2",
        "theory.limits.MagnitudeProfile.R",
        "theory.limits.kept_count",
        "nets.prune.global_magnitude_masks",
    ),
)
def magnitude_profile_and_kept_count() -> CheckResult:
    from theory.limits import MagnitudeProfile, kept_count

    tally = Tally()
    wq = [Fraction(v, 4) for v in (12, -4, 8, 0, 2, -7, 5, 5, 1, -3)]
    prof = MagnitudeProfile(np.array([float(v) for v in wq]))
    sq = sorted(v * v for v in wq)
    cum = [sum(sq[:j], Fraction(0)) for j in range(len(sq) + 1)]
    N = len(wq)
    for num in range(0, 41):
        rho = Fraction(num, 40)
        j = (1 - rho) * N
        i = math.floor(j)
        ref = cum[i] + (j - i) * (cum[i + 1] - cum[i]) if i < N else cum[N]
        tally.close(f"R²({rho})", prof.R2(float(rho)), ref, rtol=8 * EPS, atol=8 * EPS * float(cum[N]))
        with mp.workdps(30):
            tally.close(f"R({rho})", prof.R(float(rho)), mp.sqrt(to_mp(ref)), rtol=8 * EPS, atol=1e-7 * EPS)
    tally.check("norm² and R(1) = 0", prof.norm2 == float(cum[N]) and prof.R(1.0) == 0.0)
    tally.check("kept fraction of the non-zero weights", prof.kept_fraction_nonzero == 0.9)
    vec = prof.R2(np.array([0.0, 0.35, 1.0]))
    tally.check("vectorised R²", np.allclose(vec, [float(cum[N]), prof.R2(0.35), 0.0], rtol=0, atol=0))
    # kept_count: decimals whose binary value times n lands ulps above an integer keep exactly ⌈ρn⌉
    for n in (0, 1, 7, 10, 100, 12345, 3_883_000, 10**9):
        for i in range(0, 1001, 7):
            dec = Fraction(i, 1000)
            want = math.ceil(dec * n)
            tally.check(f"kept_count({i / 1000}, {n}) = {want}", kept_count(i / 1000, n) == want)
    for rho, n, want in ((0.3, 10, 3), (0.001, 3_883_000, 3883), (0.25, 3, 1), (3.0000004e-7, 10**7, 4), (1.0, 5, 5),
                         (0.0, 5, 0), (1e-12, 10, 1), (0.5 + 2**-40, 2**20, 2**19 + 1)):
        tally.check(f"kept_count({rho}, {n}) = {want}", kept_count(rho, n) == want)

    import torch
    from torch import nn

    from nets.prune import global_magnitude_masks

    lin = nn.Linear(10, 7, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(1, 71, dtype=torch.float32).reshape(7, 10)[torch.randperm(7, generator=torch.Generator().manual_seed(0))]
                         * torch.where(torch.arange(70).reshape(7, 10) % 3 == 0, -1.0, 1.0))
    mags = lin.weight.detach().abs().flatten().numpy()
    for rho in (0.0, 0.3, 0.1, 0.57, 0.999, 1.0):
        mask = global_magnitude_masks(lin, rho)["weight"].flatten().numpy()
        k = kept_count(rho, 70)
        tally.check(f"LOMP keeps kept_count({rho}, 70) = {k}", int(mask.sum()) == k)
        tally.check(f"LOMP keeps the largest (ρ={rho})", k == 0 or float(mags[mask].min()) > float(mags[~mask].max(initial=0.0)))
    return tally.result()


@check(
    "limits/authors-ratio",
    "§2: the authors' cal_rate: removed i/sweep minimising |gw(R_i) − i/sweep|, gw(R) = (1−z)·E[2ε/(2ε + |λ|R²)] + z, "
    "R_i² = the max(1, ⌈(i/sweep)N⌉) smallest w², optionally rounded to an integer; grid density of one node",
    covers=("theory.limits.authors_pruning_ratio",),
)
def authors_ratio() -> CheckResult:
    from theory.limits import authors_pruning_ratio

    tally = Tally()
    rng = np.random.default_rng(35)
    with mp.workdps(30):
        for lam_, N, eps_, z, scale in ((2.0, 500, 0.05, 0.0, 1.0), (0.7, 333, 0.4, 0.2, 3.0), (5.0, 1000, 0.01, 0.5, 0.3)):
            w = scale * rng.laplace(size=N)
            sq = sorted(mp.mpf(v) ** 2 for v in w)
            cum = [mp.mpf(0)]
            for v in sq:
                cum.append(cum[-1] + v)
            nodes = np.array([[lam_, -lam_ / 2, lam_ * 3]])
            p = np.array([[0.5, 0.25, 0.25]])
            for round_R in (False, True):
                sweep = 1000
                best, best_i = None, None
                R_ref = []
                for i in range(sweep):
                    removed = i / sweep
                    n_removed = max(1, math.ceil(removed * float(N)))  # their float arithmetic and ⌈·⌉
                    R = mp.sqrt(cum[n_removed])
                    if round_R:
                        R = mp.mpf(round(float(R)))
                    R_ref.append(R)
                    gw = mp.fsum(mp.mpf(q) * 2 * eps_ / (2 * eps_ + abs(mp.mpf(l)) * R * R) for l, q in zip(nodes[0], p[0]))
                    gw = (1 - mp.mpf(z)) * gw + z
                    gap = abs(gw - removed)
                    if best is None or gap < best:
                        best, best_i = gap, i
                got = authors_pruning_ratio(nodes, p, w, eps_, zero_fraction=z, round_R=round_R, grid=False)
                tally.check(f"removed index λ={lam_} z={z} round_R={round_R}: {got.index} ≠ {best_i}", got.index == best_i)
                worst = max(abs(mp.mpf(float(a)) - b) / max(b, 1) for a, b in zip(got.R_used, R_ref))
                tally.check(f"R used at every level (λ={lam_}, round_R={round_R}): worst {mp.nstr(worst, 3)}", worst <= 16 * EPS)
                tally.check("removed/kept fractions", got.removed_fraction == best_i / sweep and got.kept_fraction == 1 - best_i / sweep)
            # grid=True with one node and three bins: the middle bin is the node, the kernel (σ = 1e-5) is far
            # narrower than the spacing 0.01, so the density is the single atom
            one = authors_pruning_ratio(np.array([[lam_]]), np.array([[1.0]]), w, eps_, zero_fraction=z, grid=True, num_bins=3,
                                        round_R=False)
            ref = authors_pruning_ratio(np.array([[lam_]]), np.array([[1.0]]), w, eps_, zero_fraction=z, grid=False, round_R=False)
            tally.check(f"grid of one node = the atom (λ={lam_})", one.index == ref.index)
            tally.close(f"grid prediction (λ={lam_})", one.predicted_removed[ref.index], ref.predicted_removed[ref.index], rtol=1e-12)
    return tally.result()


# ---------------------------------------------------------------------------------------------------------
@check(
    "prune/smart-ratio-counts",
    "Su et al. 2020 §5: conv layer l of L keeps ∝ q_l = (L−l+1)² + (L−l+1), water-filled at 1, linear layers "
    "⌈0.3 N_l⌉, integer counts by largest remainders summing to ⌈ρN⌉ (exact rationals)",
    covers=("nets.prune.smart_ratio_kept_counts",),
)
def smart_ratio_counts() -> CheckResult:
    from torch import nn

    from nets.prune import smart_ratio_kept_counts
    from theory.limits import kept_count

    tally = Tally()
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.Conv2d(5, 7, 3), nn.Conv2d(7, 4, 1), nn.Flatten(), nn.Linear(36, 10))
    sizes = [3 * 5 * 9, 5 * 7 * 9, 7 * 4, 36 * 10]
    for rho in [i / 100 for i in range(13, 70)]:  # the linear layer alone keeps 108 of 838; above 0.69 no room
        target = kept_count(rho, sum(sizes))
        lin = kept_count(0.3, sizes[3])
        budget = Fraction(target - lin)
        L = 3
        q = [Fraction((L - l + 1) ** 2 + (L - l + 1)) for l in range(1, L + 1)]
        nl = [Fraction(v) for v in sizes[:3]]
        # water-filling: the largest c with Σ N_l min(1, c q_l) = budget (saturate layers in order of q)
        sat = set()
        while True:
            free = [i for i in range(L) if i not in sat]
            c = (budget - sum(nl[i] for i in sat)) / sum(nl[i] * q[i] for i in free)
            new = {i for i in free if c * q[i] >= 1}
            if not new:
                break
            sat |= new
        exact = [nl[i] if i in sat else nl[i] * c * q[i] for i in range(L)]
        base = [math.floor(e) for e in exact]
        short = int(budget) - sum(base)
        for i in sorted(range(L), key=lambda i: (-(exact[i] - base[i]), i)):
            if short > 0 and base[i] < nl[i]:
                base[i] += 1
                short -= 1
        got = smart_ratio_kept_counts(model, rho)
        names = list(got)
        tally.check(f"ρ={rho}: counts {[got[n] for n in names]} vs {base + [lin]}", [got[n] for n in names] == base + [lin])
        tally.check(f"ρ={rho}: sum = kept_count", sum(got.values()) == target)
    return tally.result()
