//! The Cloud Run functions (one per analysis, plus `style`), and which of them a process
//! serves: each function's binary serves one; `ongi serve` serves all of them in one
//! process. The wire formats (`ongi.results.v1`, cache keys) name a function's result by its
//! [`Function::name`] under the key `module`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Embedding,
    Category,
    Duplicate,
    Quality,
    Score,
    People,
    Style,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Embedding,
        Function::Category,
        Function::Duplicate,
        Function::Quality,
        Function::Score,
        Function::People,
        Function::Style,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Embedding => "embedding",
            Function::Category => "category",
            Function::Duplicate => "duplicate",
            Function::Quality => "quality",
            Function::Score => "score",
            Function::People => "people",
            Function::Style => "style",
        }
    }

    /// Whether this module has a per-photo step fed by the `ongi-features` topic.
    pub fn has_per_photo_step(self) -> bool {
        matches!(
            self,
            Function::Category | Function::Quality | Function::Score | Function::People
        )
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of functions one process serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Functions(Vec<Function>);

impl Functions {
    pub fn all() -> Self {
        Self(Function::ALL.to_vec())
    }

    pub fn only(module: Function) -> Self {
        Self(vec![module])
    }

    pub fn contains(&self, module: Function) -> bool {
        self.0.contains(&module)
    }

    pub fn iter(&self) -> impl Iterator<Item = Function> + '_ {
        self.0.iter().copied()
    }

    /// `ongi` when every module is served, else the module's name (for logs and metrics).
    pub fn service_name(&self) -> String {
        if self.0.len() == Function::ALL.len() {
            "ongi".to_owned()
        } else {
            self.0.iter().map(|m| m.name()).collect::<Vec<_>>().join("+")
        }
    }
}
