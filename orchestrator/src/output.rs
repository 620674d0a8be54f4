//! Typed task outputs: the DAG builder hands out an [`Output`] for every
//! task added with a [`TypedSpec`], and a downstream task reads it through
//! that handle. The handle carries the producing task's full id (group
//! prefix included) and the type it writes, so a reader cannot name the
//! wrong task or read a different struct than the writer wrote, and a
//! renamed output field fails to compile. Reading an output is also the
//! edge: [`TaskSpec::reads`] records it, and the builder draws it.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dag::{DagBuilder, Node, TaskSpec};
use crate::task::{Task, TaskContext, TaskError, TaskResult};

/// A task whose output has a type: what it returns is stored (as JSON) for
/// the tasks that hold its [`Output`].
#[async_trait]
pub trait TypedTask: Send + Sync + 'static {
    type Output: Serialize + DeserializeOwned + Send + 'static;

    async fn run(&self, ctx: TaskContext) -> Result<Self::Output, TaskError>;
}

/// A typed task from an async closure (tests, examples, small DAGs).
pub fn typed_fn<F, Fut, T>(f: F) -> TypedFn<F, T>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    TypedFn {
        f,
        writes: PhantomData,
    }
}

/// See [`typed_fn`].
pub struct TypedFn<F, T> {
    f: F,
    writes: PhantomData<fn() -> T>,
}

#[async_trait]
impl<F, Fut, T> TypedTask for TypedFn<F, T>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = T;

    async fn run(&self, ctx: TaskContext) -> Result<T, TaskError> {
        (self.f)(ctx).await
    }
}

/// The adapter that runs a [`TypedTask`] as a [`Task`].
struct Typed<K>(K);

#[async_trait]
impl<K: TypedTask> Task for Typed<K> {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let output: K::Output = self.0.run(ctx).await?;
        // Our own types: a failure to encode is a bug, not a passing fault.
        serde_json::to_value(output).map_err(TaskError::fatal)
    }
}

/// A task spec that knows the type its task writes.
pub struct TypedSpec<T> {
    spec: TaskSpec,
    writes: PhantomData<fn() -> T>,
}

impl<T> TypedSpec<T> {
    pub fn new<K: TypedTask<Output = T>>(id: impl Into<String>, task: K) -> Self {
        TypedSpec {
            spec: TaskSpec::new(id, Arc::new(Typed(task))),
            writes: PhantomData,
        }
    }

    /// The spec with the untyped settings changed (`doc`, `pool`, `reads`,
    /// trigger rule, retries…).
    pub fn with(self, f: impl FnOnce(TaskSpec) -> TaskSpec) -> Self {
        TypedSpec {
            spec: f(self.spec),
            writes: PhantomData,
        }
    }

    pub fn doc(self, doc: impl Into<String>) -> Self {
        self.with(|s| s.doc(doc))
    }

    pub fn pool(self, pool: impl Into<String>, slots: u32) -> Self {
        self.with(|s| s.pool(pool, slots))
    }

    /// The task reads `output` (see [`TaskSpec::reads`]).
    pub fn reads<U>(self, output: &Output<U>) -> Self {
        self.with(|s| s.reads(output))
    }

    /// Maps the task over DAG param `name` (see [`TaskSpec::expand_over_param`]);
    /// add it with [`DagBuilder::add_mapped`].
    pub fn expand_over_param(self, name: &str) -> Self {
        self.with(|s| s.expand_over_param(name))
    }

    /// Maps the task over the list `output` holds, one instance per item
    /// (see [`TaskSpec::expand_over`]); add it with [`DagBuilder::add_mapped`].
    pub fn expand_over<I>(self, output: &Output<Vec<I>>) -> Self {
        self.with(|s| s.expand_over(output))
    }

    /// The most instances the mapped task may expand to.
    pub fn max_map_length(self, n: usize) -> Self {
        self.with(|s| s.max_map_length(n))
    }

    /// As an untyped spec, for code that does not read its output.
    pub fn untyped(self) -> TaskSpec {
        self.spec
    }
}

/// What a task of the DAG writes, as downstream tasks read it.
pub struct Output<T> {
    task_id: String,
    writes: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Output {
            task_id: self.task_id.clone(),
            writes: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Output({})", self.task_id)
    }
}

impl<T> Output<T> {
    /// The full id of the task that writes it.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The writing task as a node, for ordering edges.
    pub fn node(&self) -> Node {
        Node::Task(self.task_id.clone())
    }
}

impl<T: DeserializeOwned> Output<T> {
    /// This output, in a try of a task that reads it.
    pub fn get(&self, ctx: &TaskContext) -> Result<T, TaskError> {
        ctx.upstream(&self.task_id)
    }
}

/// What a task of a mapped task group writes, seen from inside the group
/// (one instance) or after it (every instance).
pub struct GroupOutput<T>(Output<T>);

impl<T> Clone for GroupOutput<T> {
    fn clone(&self) -> Self {
        GroupOutput(self.0.clone())
    }
}

impl<T> GroupOutput<T> {
    /// For a task in the same group: instance `i` reads what instance `i`
    /// of this task wrote.
    pub fn each(&self) -> Output<T> {
        self.0.clone()
    }

    /// For a task after the group: every instance's output, in
    /// `map_index` order (instances that wrote none left out).
    pub fn all(&self) -> Output<Vec<T>> {
        Output {
            task_id: self.0.task_id.clone(),
            writes: PhantomData,
        }
    }
}

impl DagBuilder {
    /// Adds a typed task; downstream tasks read its output through the handle.
    pub fn add<T>(&mut self, spec: TypedSpec<T>) -> Output<T> {
        let node = self.task(spec.spec);
        Self::output_of(node)
    }

    /// Adds a mapped typed task: downstream tasks read the outputs of its
    /// instances as one list, in `map_index` order.
    pub fn add_mapped<T>(&mut self, spec: TypedSpec<T>) -> Output<Vec<T>> {
        let node = self.task(spec.spec);
        Self::output_of(node)
    }

    /// [`DagBuilder::add`] inside a group: the output's id is `group.id`.
    pub fn group_add<T>(&mut self, group: &str, spec: TypedSpec<T>) -> Output<T> {
        let node = self.group_task(group, spec.spec);
        Self::output_of(node)
    }

    /// Adds a typed task to mapped group `group` (see
    /// [`DagBuilder::mapped_group`]): tasks in the group read one
    /// instance's output through [`GroupOutput::each`], tasks after it all
    /// of them through [`GroupOutput::all`].
    pub fn mapped_group_add<T>(&mut self, group: &str, spec: TypedSpec<T>) -> GroupOutput<T> {
        let node = self.group_task(group, spec.spec);
        GroupOutput(Self::output_of(node))
    }

    fn output_of<T>(node: Node) -> Output<T> {
        let Node::Task(task_id) = node else {
            unreachable!("a task spec adds a task node");
        };
        Output {
            task_id,
            writes: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;
    use crate::dag::Dag;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Count {
        n: u32,
    }

    struct Produce;

    #[async_trait]
    impl TypedTask for Produce {
        type Output = Count;
        async fn run(&self, _ctx: TaskContext) -> Result<Count, TaskError> {
            Ok(Count { n: 3 })
        }
    }

    struct Consume(Output<Count>);

    #[async_trait]
    impl Task for Consume {
        async fn execute(&self, ctx: TaskContext) -> TaskResult {
            Ok(Value::from(self.0.get(&ctx)?.n * 2))
        }
    }

    #[test]
    fn reading_an_output_is_the_edge_and_names_the_grouped_task() {
        let mut b = Dag::builder("typed");
        let produced: Output<Count> = b.group_add("g", TypedSpec::new("produce", Produce));
        assert_eq!(produced.task_id(), "g.produce");
        let consume =
            TaskSpec::new("consume", Arc::new(Consume(produced.clone()))).reads(&produced);
        b.task(consume);
        let dag = b.build().expect("valid");
        let consumer = dag.task("consume").expect("consume");
        assert_eq!(consumer.upstream, ["g.produce"]);
    }
}
