//! Directed graphs drawn left to right as SVG: the DAG of a pipeline (tasks coloured by a
//! run's states) and the lineage of datasets. Layers are the longest path from a source, so
//! every edge points right; within a layer nodes are ordered by the mean position of their
//! upstream nodes (one barycentre sweep), which removes most crossings of real pipelines.

use std::fmt::Write as _;

pub struct Node {
    pub label: String,
    /// A CSS class (the state), or empty.
    pub class: String,
    pub href: Option<String>,
    /// Shown on hover.
    pub title: String,
}

const WIDTH: usize = 168;
const HEIGHT: usize = 30;
const CHAR_WIDTH: usize = 7;
const MAX_CHARS: usize = 40;
const GAP_X: usize = 56;
const GAP_Y: usize = 14;

/// (x, y) of each node's top-left corner, and the drawing's width and height.
fn layout(
    nodes: usize,
    edges: &[(usize, usize)],
    node_width: usize,
) -> (Vec<(usize, usize)>, usize, usize) {
    let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for &(from, to) in edges {
        upstream[to].push(from);
    }
    // Longest path from a source; nodes come in topological order for pipelines, but lineage
    // graphs may not, so iterate to a fixed point (bounded: a cycle stops at `nodes` rounds).
    let mut layer = vec![0usize; nodes];
    for _ in 0..nodes {
        let mut changed = false;
        for &(from, to) in edges {
            if layer[to] < layer[from] + 1 && layer[from] + 1 < nodes {
                layer[to] = layer[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (n, &l) in layer.iter().enumerate() {
        rows[l].push(n);
    }
    let mut position = vec![0f64; nodes];
    for row in &mut rows {
        let key = |n: &usize| -> f64 {
            let up = &upstream[*n];
            if up.is_empty() {
                *n as f64
            } else {
                up.iter().map(|u| position[*u]).sum::<f64>() / up.len() as f64
            }
        };
        row.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.cmp(b)));
        for (i, n) in row.iter().enumerate() {
            position[*n] = i as f64;
        }
    }
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut xy = vec![(0, 0); nodes];
    for (l, row) in rows.iter().enumerate() {
        // Short layers are centred against the tallest one.
        let offset = (tallest - row.len()) * (HEIGHT + GAP_Y) / 2;
        for (i, n) in row.iter().enumerate() {
            xy[*n] = (
                GAP_Y + l * (node_width + GAP_X),
                GAP_Y + offset + i * (HEIGHT + GAP_Y),
            );
        }
    }
    let width = GAP_Y * 2 + layers * node_width + layers.saturating_sub(1) * GAP_X;
    let height = GAP_Y * 2 + tallest * HEIGHT + tallest.saturating_sub(1) * GAP_Y;
    (xy, width, height)
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The graph as an inline SVG element (labels escaped).
pub fn svg(nodes: &[Node], edges: &[(usize, usize)], label: &str) -> String {
    // Nodes as wide as the longest label needs (about 7 px a character), within bounds: a
    // lineage graph's table names are longer than a pipeline's task names.
    let longest = nodes.iter().map(|n| n.label.chars().count()).max();
    let node_width = (longest.unwrap_or(0).min(MAX_CHARS) * CHAR_WIDTH + 20).max(WIDTH);
    let fits = (node_width - 20) / CHAR_WIDTH;
    let (xy, width, height) = layout(nodes.len(), edges, node_width);
    let mut out = format!(
        r#"<svg class="graph" role="img" aria-label="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        escape(label)
    );
    for &(from, to) in edges {
        let (x1, y1) = (xy[from].0 + node_width, xy[from].1 + HEIGHT / 2);
        let (x2, y2) = (xy[to].0, xy[to].1 + HEIGHT / 2);
        let mid = (x1 + x2) / 2;
        let _ = write!(
            out,
            r#"<path class="edge" d="M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}"/>"#
        );
    }
    for (node, (x, y)) in nodes.iter().zip(&xy) {
        let shown: String = if node.label.chars().count() > fits {
            node.label.chars().take(fits - 1).chain(['…']).collect()
        } else {
            node.label.clone()
        };
        let body = format!(
            r#"<g class="node {class}"><title>{title}</title><rect x="{x}" y="{y}" width="{node_width}" height="{HEIGHT}" rx="5"/><text x="{tx}" y="{ty}">{label}</text></g>"#,
            class = escape(&node.class),
            title = escape(&node.title),
            tx = x + 10,
            ty = y + HEIGHT / 2 + 5,
            label = escape(&shown),
        );
        match &node.href {
            Some(href) => {
                let _ = write!(out, r#"<a href="{}">{body}</a>"#, escape(href));
            }
            None => out.push_str(&body),
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_point_right_and_siblings_stack() {
        // a → b, a → c, b → d, c → d, and e alone.
        let (xy, width, height) = layout(5, &[(0, 1), (0, 2), (1, 3), (2, 3)], WIDTH);
        assert!(xy[0].0 < xy[1].0 && xy[1].0 == xy[2].0 && xy[2].0 < xy[3].0);
        assert_ne!(xy[1].1, xy[2].1);
        assert_eq!(xy[4].0, xy[0].0, "a source is in the first layer");
        assert_eq!(width, 2 * GAP_Y + 3 * WIDTH + 2 * GAP_X);
        assert_eq!(height, 2 * GAP_Y + 2 * HEIGHT + GAP_Y);
    }

    #[test]
    fn a_cycle_does_not_loop_forever() {
        let (xy, _, _) = layout(2, &[(0, 1), (1, 0)], WIDTH);
        assert_eq!(xy.len(), 2);
    }

    #[test]
    fn labels_are_escaped() {
        let node = Node {
            label: "<b>".into(),
            class: "success".into(),
            href: Some("/x?a=1&b=2".into()),
            title: "\"t\"".into(),
        };
        let out = svg(&[node], &[], "g");
        assert!(
            out.contains("&lt;b&gt;")
                && out.contains("a=1&amp;b=2")
                && out.contains("&quot;t&quot;")
        );
    }
}
