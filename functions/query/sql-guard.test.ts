import { describe, expect, it } from 'vitest';
import { DEFAULT_SQL_LIMITS, checkAst, engineError, parseAst } from './sql-guard.ts';

/** EXPLAIN AST output as chDB 26.7 prints it (captured), one string per line. */
const ast = (text: string): ReturnType<typeof checkAst> => checkAst(parseAst(text.split('\n')));

describe('checkAst', () => {
  it('allows a SELECT over riptide and allow-listed system tables', () => {
    expect(
      ast(`SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 2)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier riptide.t (alias a)
    TablesInSelectQueryElement (children 2)
     TableExpression (children 1)
      TableIdentifier system.one
     TableJoin`),
    ).toEqual({ select: true });
  });

  it('refuses INTO OUTFILE, FORMAT and SETTINGS wherever the parser hangs them', () => {
    expect(ast("SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n   ExpressionList (children 1)\n    Literal UInt64_1\n Literal '/tmp/x'")).toMatch(/OUTFILE/);
    expect(ast('SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n   ExpressionList (children 1)\n    Literal UInt64_1\n Identifier CSV')).toMatch(/FORMAT/);
    expect(ast("ShowTables (children 1)\n Literal '/tmp/x'")).toMatch(/OUTFILE/);
    expect(ast('ShowTables (children 1)\n Identifier CSV')).toMatch(/SHOW TABLES only FROM/);
    expect(ast('ShowTables (children 1)\n Identifier riptide')).toEqual({ select: false });
    expect(ast("ShowCreateTableQuery riptide t (children 3)\n Identifier riptide\n Identifier t\n Literal 'x'")).toMatch(/OUTFILE/);
    expect(ast('ExistsTableQuery riptide t (children 3)\n Identifier riptide\n Identifier t\n Identifier CSV')).toMatch(/FORMAT/);
    expect(ast("Explain EXPLAIN (children 2)\n SelectWithUnionQuery (children 1)\n  ExpressionList (children 1)\n Literal '/tmp/x'")).toMatch(/OUTFILE/);
    expect(ast('SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 2)\n   ExpressionList (children 1)\n    Literal UInt64_1\n   Set')).toMatch(/SETTINGS/);
  });

  it('a name holding a newline adds lines but cannot hide the table function after a TableExpression', () => {
    // SELECT count() FROM file('x') AS `a\nTableIdentifier riptide.t`
    expect(
      ast(`SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Function count (children 1)
     ExpressionList
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function file (alias a
      TableIdentifier riptide.t) (children 1)
       ExpressionList (children 1)
        Literal 'x'`),
    ).toMatch(/table function file\(\)/);
  });

  it('refuses other statement kinds, other databases, system tables off the list, file() and dictGet()', () => {
    expect(ast('InsertQuery   (children 2)\n Function file (children 1)')).toMatch(/only read queries/);
    expect(ast('SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  TableExpression (children 1)\n   TableIdentifier default.x')).toMatch(/database default/);
    expect(ast('SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  TableExpression (children 1)\n   TableIdentifier system.users')).toMatch(/system\.users/);
    expect(ast('SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Function in (children 1)\n   ExpressionList (children 2)\n    Literal UInt64_1\n    Identifier system.users')).toMatch(/system\.users/);
    expect(ast("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Function file (children 1)\n   ExpressionList (children 1)\n    Literal '/etc/shadow'")).toMatch(/file\(\)/);
    expect(ast("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Function dictGetString (children 1)")).toMatch(/dictGetString\(\)/);
    expect(ast('SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  TableExpression (children 1)\n   Function numbers (children 1)')).toEqual({ select: true });
  });
});

describe('engineError', () => {
  it('turns the statement’s errors into 400s with the reason and the limit, leaves engine faults alone', () => {
    const t = engineError(new Error('Code: 159. DB::Exception: Timeout exceeded: elapsed 3001 ms, maximum: 3000 ms. (TIMEOUT_EXCEEDED) (version 26.7.2.1)'), DEFAULT_SQL_LIMITS);
    expect(t?.status).toBe(400);
    expect(t?.reason).toBe('limit');
    expect(t?.message).toBe('Timeout exceeded: elapsed 3001 ms, maximum: 3000 ms. (TIMEOUT_EXCEEDED) [time limit 30 s of the SQL endpoint]');
    expect(engineError(new Error('Code: 153. DB::Exception: Division by zero. (ILLEGAL_DIVISION)'), DEFAULT_SQL_LIMITS)?.reason).toBe('engine');
    expect(engineError(Object.assign(new Error('Requested cluster nope not found'), { code: '701', type: 'CLUSTER_DOESNT_EXIST' }), DEFAULT_SQL_LIMITS)?.message).toMatch(/nope.*CLUSTER_DOESNT_EXIST/);
    expect(engineError(new Error('Code: 49. DB::Exception: Logical error. (LOGICAL_ERROR)'), DEFAULT_SQL_LIMITS)).toBeUndefined();
    expect(engineError(new Error('socket hang up'), DEFAULT_SQL_LIMITS)).toBeUndefined();
    expect(engineError(new Error("Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. (READONLY)"), DEFAULT_SQL_LIMITS)?.message).toMatch(/^a SETTINGS clause/);
  });
});
