//! A write's statements about one transaction, sent as one where the
//! database allows it.
//!
//! SQLite's writes share one connection, served by one sqlx thread: each
//! statement is a hand-over between threads (0.1-0.2 ms under relay load),
//! and the writer is held for all of them. So on SQLite a batch goes as one
//! multi-statement query (sqlx binds the values across its statements in
//! order). A server's drivers prepare one statement a query, so there the
//! statements run one by one, and stop early when the guard misses.

use futures::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyConnection, Arguments, Either, Encode, Executor, Type};

use super::{Backend, db, json, to_i64};
use crate::store::{Attempt, DecisionRecord, EventKind, StoreError, now_ms};

pub(super) struct Batch<'q> {
    backend: Backend,
    /// The transaction the statements are about: a foreign-key miss is
    /// [`StoreError::NotFound`] of it.
    id: &'q str,
    /// The attempt number inserted, if one is: a unique miss is
    /// [`StoreError::AttemptTaken`] of it.
    attempt: Option<u32>,
    /// On SQLite, one entry holding every statement.
    statements: Vec<(String, AnyArguments<'q>)>,
    count: usize,
    /// The statements that must change a row for the rest to count.
    guards: Vec<usize>,
    bind_error: Option<BoxDynError>,
}

impl<'q> Batch<'q> {
    pub(super) fn new(backend: Backend, id: &'q str) -> Self {
        Batch { backend, id, attempt: None, statements: Vec::new(), count: 0, guards: vec![0], bind_error: None }
    }

    /// Adds a statement written with `?` placeholders; its values follow
    /// with [`Batch::bind`].
    pub(super) fn push(&mut self, sql: &str) -> &mut Self {
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

    /// Makes the last statement a guard too, like the first.
    pub(super) fn guard(&mut self) -> &mut Self {
        self.guards.push(self.count.saturating_sub(1));
        self
    }

    pub(super) fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        let Some((_, arguments)) = self.statements.last_mut() else {
            self.bind_error.get_or_insert_with(|| "a value bound before any statement".into());
            return self;
        };
        if let Err(e) = arguments.add(value) {
            self.bind_error.get_or_insert(e);
        }
        self
    }

    /// Runs the statements inside the caller's database transaction, and
    /// answers the rows they returned. The first is a guard: when a guard
    /// changes no row, the statements after it do not count (on a server
    /// they do not run, and an error of theirs on SQLite is not one), and
    /// the answer is `None`; the caller rolls back.
    pub(super) async fn run(self, conn: &mut AnyConnection) -> Result<Option<Vec<AnyRow>>, StoreError> {
        if let Some(e) = self.bind_error {
            return Err(StoreError::Database(format!("cannot bind a value: {e}")));
        }
        // Rows changed, one entry a statement. On SQLite a SELECT's entry
        // repeats the statement before it; the guards are writes.
        let mut changes = Vec::with_capacity(self.count);
        let mut rows = Vec::new();
        let missed = |changes: &[u64]| self.guards.iter().any(|&g| changes.get(g) == Some(&0));
        for (sql, arguments) in self.statements {
            let mut answers = conn.fetch_many(sqlx::query_with(&sql, arguments));
            loop {
                match answers.try_next().await {
                    Ok(Some(Either::Left(done))) => changes.push(done.rows_affected()),
                    Ok(Some(Either::Right(row))) => rows.push(row),
                    Ok(None) => break,
                    Err(_) if missed(&changes) => return Ok(None),
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Err(StoreError::NotFound(self.id.to_string()));
                    }
                    Err(sqlx::Error::Database(e))
                        if e.is_unique_violation()
                            && let Some(attempt) = self.attempt =>
                    {
                        return Err(StoreError::AttemptTaken { id: self.id.to_string(), attempt });
                    }
                    Err(e) => return Err(db(e)),
                }
            }
            if missed(&changes) {
                return Ok(None);
            }
        }
        if changes.len() != self.count {
            return Err(StoreError::Database(format!(
                "{} of {} statements answered about transaction {}",
                changes.len(),
                self.count,
                self.id
            )));
        }
        Ok(Some(rows))
    }
}

/// The rows a transaction's writes append beside their change.
impl<'q> Batch<'q> {
    /// The transaction's status event, as the statements before left it.
    pub(super) fn status_event(&mut self) -> &mut Self {
        let id = self.id;
        self.push(
            "INSERT INTO events (kind, transaction_id, relayer_id, status, detail, created_at)
             SELECT ?, id, relayer_id, status, status_reason, ? FROM transactions WHERE id = ?",
        )
        .bind(EventKind::TransactionStatus.as_str())
        .bind(now_ms())
        .bind(id)
    }

    pub(super) fn decision(&mut self, decision: &DecisionRecord) -> Result<&mut Self, StoreError> {
        let (id, record) = (self.id, json(decision)?);
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
    pub(super) fn attempt(&mut self, attempt: &'q Attempt) -> Result<&mut Self, StoreError> {
        self.attempt = Some(attempt.attempt);
        let id = self.id;
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
        let id = self.id;
        self.push("INSERT INTO outbox (transaction_id, state, available_at, created_at) VALUES (?, 'queued', ?, ?)")
            .bind(id)
            .bind(at)
            .bind(at)
    }
}
