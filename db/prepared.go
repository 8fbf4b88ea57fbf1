package db

import (
	"context"
	"database/sql"
	"errors"
)

// prepared holds the hot statements of one pool, prepared once at Open.
// Without it every call parses its SQL again, a fifth of a write's CPU;
// database/sql keeps each statement prepared on every connection that ran
// it, and Tx.StmtContext reuses that inside a transaction. Statements are
// never prepared later: preparing on the one-connection writer pool while
// a transaction holds the connection would wait forever. Queries not in
// the set simply run unprepared.
type prepared struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt
}

func newPrepared(ctx context.Context, db *sql.DB, queries []string) (*prepared, error) {
	p := &prepared{db: db, stmts: map[string]*sql.Stmt{}}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, err
		}
		p.stmts[q] = st
	}
	return p, nil
}

func (p *prepared) close() error {
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// exec runs query in tx. The statement does not watch ctx: a write runs
// to the end of its savepoint once begun (the committer skips a write
// whose caller gave up before it ran), and watching costs the driver a
// goroutine per statement (modernc.org/sqlite interrupts through one),
// several times the statement itself on a busy machine.
func (p *prepared) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if st, ok := p.stmts[query]; ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// query runs query in tx.
func (p *prepared) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st, ok := p.stmts[query]; ok {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// queryRow runs a one-row query in tx, or on the pool when tx is nil.
// Like exec, it does not watch ctx: one-row queries are index lookups,
// over before an interrupt could matter.
func (p *prepared) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	st, ok := p.stmts[query]
	switch {
	case ok && tx != nil:
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	case ok:
		return st.QueryRowContext(ctx, args...)
	case tx != nil:
		return tx.QueryRowContext(ctx, query, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// txStatements are the statements one long write runs once per record
// (an import), each prepared on its transaction's connection the first
// time it runs and reused after: parsed once per record, they were a
// quarter of a 100,000-node import's CPU (an outside trial's profile).
// The hot statements of p are used as they are. Close before the
// transaction ends.
type txStatements struct {
	hot   *prepared
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (p *prepared) forTx(tx *sql.Tx) *txStatements {
	return &txStatements{hot: p, tx: tx, stmts: map[string]*sql.Stmt{}}
}

// stmt is query prepared in the transaction, or nil where it cannot be
// (the unprepared query then reports why).
func (t *txStatements) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.stmts[query]; ok {
		return st
	}
	st, err := t.tx.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	t.stmts[query] = st
	return st
}

// queryRow runs a one-row query, as prepared.queryRow does.
func (t *txStatements) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if _, ok := t.hot.stmts[query]; ok {
		return t.hot.queryRow(ctx, t.tx, query, args...)
	}
	ctx = context.WithoutCancel(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// exec runs a statement, as prepared.exec does.
func (t *txStatements) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if _, ok := t.hot.stmts[query]; ok {
		return t.hot.exec(ctx, t.tx, query, args...)
	}
	ctx = context.WithoutCancel(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txStatements) close() {
	for _, st := range t.stmts {
		st.Close()
	}
}
