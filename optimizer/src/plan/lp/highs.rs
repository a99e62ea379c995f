//! A component's LP (or integer program) built over good_lp and solved by HiGHS, with the duals
//! of its rows.

use super::*;

pub(super) trait IntegerIf {
    fn integer_if(self, integer: bool) -> Self;
}

impl IntegerIf for good_lp::VariableDefinition {
    fn integer_if(self, integer: bool) -> Self {
        if integer {
            self.integer()
        } else {
            self
        }
    }
}

/// Builds and solves one component's LP (or, with `integer`, its integer program).
/// How to hand a component to HiGHS.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) enum Mode {
    /// The LP with settings tuned for small sparse components.
    Lp,
    /// The integer program (branch and bound).
    Integer,
    /// The LP with HiGHS's default settings, as a peer would run it.
    Monolithic,
}

/// One column of a component: an option of an order, or the order's split column `z`.
#[derive(Copy, Clone)]
pub(super) struct Col {
    order: usize,
    /// The option index, `None` for `z`.
    opt: Option<usize>,
}

/// Solves one component: every live option of its orders is a column, every row bounded by
/// what the presolve left of it.
pub(super) fn solve_component(
    pre: &Presolve,
    c: &Component,
    mode: Mode,
) -> Result<ComponentSolution, PlanError> {
    solve_within(pre, c, mode, &pre.left)
}

/// Solves one component with row `r` bounded by `left[r]`.
pub(super) fn solve_within(
    pre: &Presolve,
    c: &Component,
    mode: Mode,
    left: &[f64],
) -> Result<ComponentSolution, PlanError> {
    let inst = pre.inst;
    let mut cols: Vec<Col> = Vec::new();
    for &o in &c.orders {
        let o = o as usize;
        let mut has_split = false;
        for i in inst.option_range(o).filter(|&i| pre.alive[i]) {
            has_split |= matches!(inst.opts[i].kind, OptKind::Line(_));
            cols.push(Col { order: o, opt: Some(i) });
        }
        if has_split {
            cols.push(Col { order: o, opt: None });
        }
    }
    solve_columns(pre, c, mode, &cols, left)
}

/// Builds the LP (or integer program) over `cols` and solves it with HiGHS.
pub(super) fn solve_columns(
    pre: &Presolve,
    c: &Component,
    mode: Mode,
    cols: &[Col],
    left: &[f64],
) -> Result<ComponentSolution, PlanError> {
    let integer = mode == Mode::Integer;
    let inst = pre.inst;
    let mut vars = ProblemVariables::new();
    let mut objective = Expression::with_capacity(cols.len());
    let mut columns: Vec<Variable> = Vec::with_capacity(cols.len());
    let mut row_expr: Vec<Expression> = vec![Expression::default(); c.rows.len()];
    let mut convex: Vec<Expression> = vec![Expression::default(); c.orders.len()];
    let mut line_start = Vec::with_capacity(c.orders.len());
    let mut lines: Vec<Expression> = Vec::new();
    let mut split_of: Vec<Option<Variable>> = vec![None; c.orders.len()];
    let mut k = usize::MAX;
    let mut at_order = usize::MAX;
    for col in cols {
        if col.order != at_order {
            at_order = col.order;
            k = k.wrapping_add(1);
            line_start.push(lines.len());
            lines.extend((0..inst.lines(col.order).len()).map(|_| Expression::default()));
        }
        let v = vars.add(variable().min(0.0).max(1.0).integer_if(integer));
        columns.push(v);
        match col.opt {
            None => {
                objective.add_mul(-inst.split_penalty, v);
                convex[k].add_mul(1.0, v);
                split_of[k] = Some(v);
            }
            Some(i) => {
                let x = &inst.opts[i];
                objective.add_mul(x.cost, v);
                match x.kind {
                    OptKind::Line(n) => lines[line_start[k] + usize::from(n)].add_mul(1.0, v),
                    _ => convex[k].add_mul(1.0, v),
                }
                inst.rows_of(col.order, x, |r, coef| {
                    if let Ok(at) = c.rows.binary_search(&r) {
                        row_expr[at].add_mul(coef, v);
                    }
                });
            }
        }
    }
    let mut model = vars.minimise(objective.clone()).using(highs);
    if mode == Mode::Lp {
        // Components are small and sparse: HiGHS's presolve costs more than it saves, and
        // devex pricing beats steepest edge here (measured on the 20k x 100k instances).
        model = model
            .set_threads(1)
            .set_option("presolve", "off")
            .set_option("simplex_dual_edge_weight_strategy", 1);
    } else if integer {
        // Branch and bound leans on presolve (probing, cuts): without it a 16,000-order
        // component's incumbent after 20 s was 15% above its LP, with it 10%.
        model = model.set_threads(1);
    }
    if integer {
        model = model.set_option("mip_rel_gap", 1e-7).set_time_limit(MIP_SECONDS);
    }
    for e in convex {
        model.add_constraint(e.eq(1.0));
    }
    for (k, &start) in line_start.iter().enumerate() {
        let end = line_start.get(k + 1).copied().unwrap_or(lines.len());
        if let Some(z) = split_of[k] {
            for e in &mut lines[start..end] {
                let mut e = std::mem::take(e);
                e.add_mul(-1.0, z);
                model.add_constraint(e.eq(0.0));
            }
        }
    }
    let refs: Vec<ConstraintReference> =
        row_expr.into_iter().zip(&c.rows).map(|(e, r)| model.add_constraint(e.leq(left[*r]))).collect();
    let mut sol =
        model.solve().map_err(|e| PlanError::Solver { orders: c.orders.len(), message: e.to_string() })?;
    let values: Vec<f64> = columns.iter().map(|&v| sol.value(v)).collect();
    let objective = sol.eval(&objective);
    if integer {
        return Ok(ComponentSolution { values, objective, duals: Vec::new(), by_flow: false });
    }
    let dual = sol.compute_dual();
    let duals = refs.into_iter().map(|r| dual.dual(r)).collect();
    Ok(ComponentSolution { values, objective, duals, by_flow: false })
}
