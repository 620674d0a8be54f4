//! The graph view, laid out on the server as SVG so it needs no JavaScript:
//! tasks left to right by layer (the longest path from a root), ordered
//! within a layer by the mean position of their upstreams to keep edges
//! short, edges as curves from a task's right side to its downstream's left.

use std::collections::HashMap;

use orchestrator::{Dag, TaskState};

use super::task_url;

const NODE_H: i32 = 30;
const GAP_X: i32 = 56;
const GAP_Y: i32 = 14;
const PAD: i32 = 12;
/// Width of a 12 px monospace character, in tenths of a pixel.
const CHAR_W10: i32 = 72;
const TEXT_PAD: i32 = 22;

pub struct GraphNode {
    pub task_id: String,
    /// What the box says: the task id, with `[ ]` when it is mapped.
    pub label: String,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub text_x: i32,
    pub text_y: i32,
    pub state: TaskState,
    /// Empty when no run is selected or the run has no instance of the task.
    pub href: String,
    pub title: String,
}

pub struct GraphEdge {
    pub from: String,
    pub to: String,
    /// SVG path data.
    pub d: String,
}

pub struct GraphView {
    pub width: i32,
    pub height: i32,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// Each task's layer: 0 for roots, else one more than its deepest upstream.
fn layers(dag: &Dag) -> HashMap<&str, usize> {
    let mut layer: HashMap<&str, usize> = HashMap::new();
    // Tasks come in topological order, so every upstream is placed first.
    for t in dag.tasks() {
        let l = t
            .upstream
            .iter()
            .filter_map(|u| layer.get(u.as_str()))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        layer.insert(t.id.as_str(), l);
    }
    layer
}

/// Lay out `dag`, colouring tasks by `states` (task id → state) of `run_id`.
pub fn layout(dag: &Dag, run_id: Option<&str>, states: &HashMap<String, TaskState>) -> GraphView {
    let layer_of = layers(dag);
    let topo: HashMap<&str, usize> = dag
        .tasks()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let n_layers = layer_of.values().max().map(|m| m + 1).unwrap_or(0);
    let mut columns: Vec<Vec<&str>> = vec![Vec::new(); n_layers];
    for t in dag.tasks() {
        columns[layer_of[t.id.as_str()]].push(t.id.as_str());
    }
    // Row of each placed task, for ordering the next layers by their upstreams.
    let mut row: HashMap<&str, f64> = HashMap::new();
    for col in columns.iter_mut() {
        let key = |id: &str| -> f64 {
            let ups: Vec<f64> = dag
                .task(id)
                .map(|t| {
                    t.upstream
                        .iter()
                        .filter_map(|u| row.get(u.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default();
            if ups.is_empty() {
                topo[id] as f64
            } else {
                ups.iter().sum::<f64>() / ups.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize, &str)> =
            col.iter().map(|id| (key(id), topo[id], *id)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *col = keyed.iter().map(|(_, _, id)| *id).collect();
        for (i, id) in col.iter().enumerate() {
            row.insert(id, i as f64);
        }
    }

    // Airflow marks mapped tasks with brackets.
    let label_of = |id: &str| -> String {
        match dag.task(id) {
            Some(t) if t.map.is_some() => format!("{id} [ ]"),
            _ => id.to_owned(),
        }
    };
    let width_of = |id: &str| TEXT_PAD + (label_of(id).chars().count() as i32 * CHAR_W10 + 9) / 10;
    let col_w: Vec<i32> = columns
        .iter()
        .map(|c| c.iter().map(|id| width_of(id)).max().unwrap_or(0))
        .collect();
    let col_h = |n: usize| n as i32 * NODE_H + (n as i32 - 1).max(0) * GAP_Y;
    let max_h = columns.iter().map(|c| col_h(c.len())).max().unwrap_or(0);

    let mut pos: HashMap<&str, (i32, i32, i32)> = HashMap::new();
    let mut nodes = Vec::new();
    let mut x = PAD;
    for (ci, col) in columns.iter().enumerate() {
        let top = PAD + (max_h - col_h(col.len())) / 2;
        for (ri, id) in col.iter().enumerate() {
            let y = top + ri as i32 * (NODE_H + GAP_Y);
            let w = col_w[ci];
            pos.insert(id, (x, y, w));
            let state = states.get(*id).copied();
            nodes.push(GraphNode {
                task_id: (*id).to_owned(),
                label: label_of(id),
                x,
                y,
                w,
                h: NODE_H,
                text_x: x + 14,
                text_y: y + NODE_H / 2 + 4,
                href: match (run_id, &state) {
                    (Some(r), Some(_)) => task_url(&dag.id, r, id),
                    _ => String::new(),
                },
                title: format!("{id}: {}", state.map_or("no state", TaskState::as_str)),
                state: state.unwrap_or(TaskState::None),
            });
        }
        x += col_w[ci] + GAP_X;
    }

    let mut edges = Vec::new();
    for t in dag.tasks() {
        for d in &t.downstream {
            let (Some(&(x1, y1, w1)), Some(&(x2, y2, _))) =
                (pos.get(t.id.as_str()), pos.get(d.as_str()))
            else {
                continue;
            };
            let (sx, sy) = (x1 + w1, y1 + NODE_H / 2);
            let (ex, ey) = (x2 - 2, y2 + NODE_H / 2);
            let mx = (sx + ex) / 2;
            edges.push(GraphEdge {
                from: t.id.clone(),
                to: d.clone(),
                d: format!("M{sx},{sy} C{mx},{sy} {mx},{ey} {ex},{ey}"),
            });
        }
    }
    GraphView {
        width: (x - GAP_X + PAD).max(2 * PAD),
        height: max_h + 2 * PAD,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator::{task_fn, TaskSpec};
    use serde_json::Value;

    fn noop(id: &str) -> TaskSpec {
        TaskSpec::new(id, task_fn(|_| async { Ok(Value::Null) }))
    }

    #[test]
    fn layers_follow_the_longest_path_and_edges_point_right() {
        // a → b → c and a → c: c sits in layer 2, not 1.
        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        let bb = b.task(noop("b"));
        let c = b.task(noop("c"));
        b.chain(&[&a, &bb, &c]);
        b.edge(&a, &c);
        let dag = b.build().unwrap();
        let states = HashMap::from([("a".to_owned(), TaskState::Success)]);
        let g = layout(&dag, Some("r1"), &states);
        let x = |id: &str| g.nodes.iter().find(|n| n.task_id == id).unwrap().x;
        assert!(x("a") < x("b") && x("b") < x("c"));
        assert_eq!(g.edges.len(), 3);
        let a = g.nodes.iter().find(|n| n.task_id == "a").unwrap();
        assert_eq!(a.state, TaskState::Success);
        assert_eq!(a.href, "/dags/d/runs/r1/tasks/a");
        let c = g.nodes.iter().find(|n| n.task_id == "c").unwrap();
        assert_eq!(c.state, TaskState::None);
        assert!(c.href.is_empty());
        assert!(g.width >= c.x + c.w);
    }

    #[test]
    fn parallel_tasks_stack_in_one_column() {
        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        let x = b.task(noop("x"));
        let y = b.task(noop("y"));
        b.edge(&a, &x);
        b.edge(&a, &y);
        let dag = b.build().unwrap();
        let g = layout(&dag, None, &HashMap::new());
        let node = |id: &str| g.nodes.iter().find(|n| n.task_id == id).unwrap();
        assert_eq!(node("x").x, node("y").x);
        assert_ne!(node("x").y, node("y").y);
        assert!(g.height >= node("y").y + NODE_H);
    }

    #[test]
    fn a_dag_without_tasks_is_an_empty_picture() {
        let dag = Dag::builder("empty").build().unwrap();
        let g = layout(&dag, None, &HashMap::new());
        assert!(g.nodes.is_empty() && g.edges.is_empty());
    }
}
