//! A write's statements about one transaction, sent as one where the
//! database allows it.
//!
//! SQLite's writes share one connection, served by one sqlx thread: each
//! statement is a hand-over between threads (0.1-0.2 ms under relay load),
//! and the writer is held for all of them. So on SQLite a batch goes as one
//! multi-statement query (sqlx binds the values across its statements in
//! order), and several batches share one database transaction (see
//! [`super::group`]), each behind a savepoint of its own. A server's drivers
//! prepare one statement a query, so there the statements run one by one,
//! and stop early when the guard misses.

use futures::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyConnection, Arguments, Either, Encode, Executor, Type};

use super::{Backend, db, json, to_i64};
use crate::store::{Attempt, DecisionRecord, EventKind, StoreError, now_ms};

/// Opens every SQLite batch, so that what a batch did can be undone without
/// undoing the batches before it in the same database transaction.
const SAVEPOINT: &str = "SAVEPOINT batch";

/// Owns its values, so that it can be handed to the SQLite writer's task.
pub(crate) struct Batch {
    backend: Backend,
    /// The transaction the statements are about: a foreign-key miss is
    /// [`StoreError::NotFound`] of it.
    id: String,
    /// The attempt number inserted, if one is: a unique miss is
    /// [`StoreError::AttemptTaken`] of it.
    attempt: Option<u32>,
    /// On SQLite, one entry holding every statement.
    statements: Vec<(String, AnyArguments<'static>)>,
    count: usize,
    /// The statements that must change a row for the rest to count.
    guards: Vec<usize>,
    bind_error: Option<BoxDynError>,
}

/// A value a batch can bind: it keeps its own copy of borrowed ones.
pub(crate) trait Bind {
    type Owned: 'static + Encode<'static, Any> + Type<Any>;
    fn owned(self) -> Self::Owned;
}

macro_rules! bind_as_is {
    ($($owned:ty),*) => {$(
        impl Bind for $owned {
            type Owned = $owned;
            fn owned(self) -> $owned {
                self
            }
        }
    )*};
}

bind_as_is!(bool, i64, Option<i64>, String, Option<String>, Vec<u8>);

impl Bind for &str {
    type Owned = String;
    fn owned(self) -> String {
        self.to_string()
    }
}

impl Bind for &String {
    type Owned = String;
    fn owned(self) -> String {
        self.clone()
    }
}

impl Bind for Option<&str> {
    type Owned = Option<String>;
    fn owned(self) -> Option<String> {
        self.map(str::to_string)
    }
}

impl Bind for &[u8] {
    type Owned = Vec<u8>;
    fn owned(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl Bind for Option<&[u8]> {
    type Owned = Option<Vec<u8>>;
    fn owned(self) -> Option<Vec<u8>> {
        self.map(<[u8]>::to_vec)
    }
}

/// What became of a batch run behind its savepoint.
pub(super) enum Ran {
    /// Applied, with the rows its statements returned.
    Applied(Vec<AnyRow>),
    /// Rolled back to its savepoint: a guard missed (`Ok`), or an error.
    Undone(Result<(), StoreError>),
    /// Rolling back failed: the database transaction may be gone with
    /// everything in it.
    Broken(StoreError),
}

impl Batch {
    pub(super) fn new(backend: Backend, id: &str) -> Self {
        let mut batch = Batch {
            backend,
            id: id.to_string(),
            attempt: None,
            statements: Vec::new(),
            count: 0,
            guards: Vec::new(),
            bind_error: None,
        };
        if backend == Backend::Sqlite {
            batch.push(SAVEPOINT);
        }
        batch.guards.push(batch.count);
        batch
    }

    /// Adds a statement written with `?` placeholders; its values follow
    /// with [`Batch::bind`].
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.count += 1;
        match self.statements.last_mut() {
            Some((text, _)) if self.backend == Backend::Sqlite => {
                text.push_str(";\n");
                text.push_str(sql);
            }
            _ => self.statements.push((self.backend.sql(sql).into_owned(), AnyArguments::default())),
        }
        self
    }

    /// One statement: on a server, it needs no database transaction.
    pub(super) fn is_one_statement(&self) -> bool {
        self.statements.len() == 1
    }

    /// Makes the last statement a guard too, like the first.
    pub(crate) fn guard(&mut self) -> &mut Self {
        self.guards.push(self.count.saturating_sub(1));
        self
    }

    pub(crate) fn bind<T: Bind>(&mut self, value: T) -> &mut Self {
        let Some((_, arguments)) = self.statements.last_mut() else {
            self.bind_error.get_or_insert_with(|| "a value bound before any statement".into());
            return self;
        };
        if let Err(e) = arguments.add(value.owned()) {
            self.bind_error.get_or_insert(e);
        }
        self
    }

    /// A value that could not be bound, before anything runs.
    pub(super) fn check(&mut self) -> Result<(), StoreError> {
        match self.bind_error.take() {
            Some(e) => Err(StoreError::Database(format!("cannot bind a value: {e}"))),
            None => Ok(()),
        }
    }

    /// Runs the statements inside the caller's database transaction, and
    /// answers the rows they returned. The first is a guard: when a guard
    /// changes no row, the statements after it do not count (on a server
    /// they do not run, and an error of theirs on SQLite is not one), and
    /// the answer is `None`; the caller rolls back.
    pub(super) async fn run(mut self, conn: &mut AnyConnection) -> Result<Option<Vec<AnyRow>>, StoreError> {
        self.check()?;
        self.execute(conn).await.1
    }

    /// Runs a SQLite batch inside a database transaction that other batches
    /// share: what did not apply is rolled back to the batch's savepoint.
    pub(super) async fn run_behind_savepoint(mut self, conn: &mut AnyConnection) -> Ran {
        if let Err(e) = self.check() {
            return Ran::Undone(Err(e));
        }
        let (answered, ran) = self.execute(conn).await;
        let undone = match ran {
            Ok(Some(rows)) => return Ran::Applied(rows),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        // Not even the savepoint ran: there is nothing to undo.
        if answered == 0 {
            return Ran::Undone(undone);
        }
        match conn.execute("ROLLBACK TO batch").await {
            Ok(_) => Ran::Undone(undone),
            Err(e) => Ran::Broken(db(e)),
        }
    }

    /// How many statements answered, and what [`Batch::run`] answers.
    async fn execute(self, conn: &mut AnyConnection) -> (usize, Result<Option<Vec<AnyRow>>, StoreError>) {
        // Rows changed, one entry a statement. On SQLite a SELECT's entry
        // repeats the statement before it; the guards are writes.
        let mut changes = Vec::with_capacity(self.count);
        let mut rows = Vec::new();
        let missed = |changes: &[u64]| self.guards.iter().any(|&g| changes.get(g) == Some(&0));
        for (sql, arguments) in self.statements {
            let mut answers = conn.fetch_many(sqlx::query_with(&sql, arguments));
            loop {
                let failed = match answers.try_next().await {
                    Ok(Some(Either::Left(done))) => {
                        changes.push(done.rows_affected());
                        continue;
                    }
                    Ok(Some(Either::Right(row))) => {
                        rows.push(row);
                        continue;
                    }
                    Ok(None) => break,
                    Err(_) if missed(&changes) => Ok(None),
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        Err(StoreError::NotFound(self.id.clone()))
                    }
                    Err(sqlx::Error::Database(e))
                        if e.is_unique_violation()
                            && let Some(attempt) = self.attempt =>
                    {
                        Err(StoreError::AttemptTaken { id: self.id.clone(), attempt })
                    }
                    Err(e) => Err(db(e)),
                };
                return (changes.len(), failed);
            }
            if missed(&changes) {
                return (changes.len(), Ok(None));
            }
        }
        if changes.len() != self.count {
            let error =
                format!("{} of {} statements answered about transaction {}", changes.len(), self.count, self.id);
            return (changes.len(), Err(StoreError::Database(error)));
        }
        (changes.len(), Ok(Some(rows)))
    }
}

/// The rows a transaction's writes append beside their change.
impl Batch {
    /// The transaction's status event, as the statements before left it.
    pub(super) fn status_event(&mut self) -> &mut Self {
        let id = self.id.clone();
        self.push(
            "INSERT INTO events (kind, transaction_id, relayer_id, status, detail, created_at)
             SELECT ?, id, relayer_id, status, status_reason, ? FROM transactions WHERE id = ?",
        )
        .bind(EventKind::TransactionStatus.as_str())
        .bind(now_ms())
        .bind(id)
    }

    pub(super) fn decision(&mut self, decision: &DecisionRecord) -> Result<&mut Self, StoreError> {
        let (id, record) = (self.id.clone(), json(decision)?);
        Ok(self.push("INSERT INTO decisions (transaction_id, record) VALUES (?, ?)").bind(id).bind(record))
    }

    pub(super) fn decisions(&mut self, decisions: &[DecisionRecord]) -> Result<&mut Self, StoreError> {
        for decision in decisions {
            self.decision(decision)?;
        }
        Ok(self)
    }

    /// A taken attempt number is [`StoreError::AttemptTaken`]: the callers
    /// hold the transaction's row lock, so a racing worker waits for it and
    /// then finds the number taken.
    pub(super) fn attempt(&mut self, attempt: &Attempt) -> Result<&mut Self, StoreError> {
        self.attempt = Some(attempt.attempt);
        let id = self.id.clone();
        Ok(self
            .push(
                "INSERT INTO attempts (transaction_id, attempt, purpose, hash, nonce, max_fee, priority_fee, gas_limit,
                     sent_at, to_address, value, data)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(i64::from(attempt.attempt))
            .bind(attempt.purpose.as_str())
            .bind(&attempt.hash)
            .bind(to_i64(attempt.nonce)?)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(to_i64(attempt.gas_limit)?)
            .bind(attempt.sent_at)
            .bind(attempt.to.map(|a| a.to_string()))
            .bind(attempt.value.to_string())
            .bind(attempt.data.as_slice()))
    }

    /// A queue entry, committed with the change that calls for it (the
    /// outbox).
    pub(super) fn enqueue(&mut self, at: i64) -> &mut Self {
        let id = self.id.clone();
        self.push("INSERT INTO outbox (transaction_id, state, available_at, created_at) VALUES (?, 'queued', ?, ?)")
            .bind(id)
            .bind(at)
            .bind(at)
    }
}
