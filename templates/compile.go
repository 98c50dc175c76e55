package templates

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
)

// program is a template part compiled to Go closures over the render data
// (compile): running it writes exactly what executing the parsed template
// writes, and fails with exactly the error execution fails with, without
// text/template's reflection. Parts that use anything compile does not
// support have no program and are executed as parsed.
type program struct {
	run []instr
}

// execute writes the part rendered with data d to b.
func (p *program) execute(b *bytes.Buffer, d *view) error {
	return runAll(p.run, b, d, "")
}

// instr is one compiled node of a template: it writes its output to b.
// d is the render data, which is dot at the top of a template; dot is the
// value of {{.}} inside a {{with}}, where dot is always a string.
type instr func(b *bytes.Buffer, d *view, dot string) error

// value is a compiled pipeline, command or argument: every value a
// compiled template handles is a string.
type value func(d *view, dot string) (string, error)

// escaper is one of html/template's escaping functions, reimplemented on
// strings (escape.go): it appends its output for s to dst.
type escaper func(dst []byte, s string) []byte

func runAll(run []instr, b *bytes.Buffer, d *view, dot string) error {
	for _, in := range run {
		if err := in(b, d, dot); err != nil {
			return err
		}
	}
	return nil
}

// errUnsupported is why a part is not compiled: it uses a node, function,
// argument or escaper compile does not reproduce, and is executed by the
// template package instead.
var errUnsupported = errors.New("not supported by the compiled render path")

// compiler compiles one parsed part (compile).
type compiler struct {
	name  string         // the template's name, as its execution errors give it
	tree  *parse.Tree    // to locate nodes in errors
	funcs map[string]any // the part's template functions (funcs)
}

// compile builds the program of a parsed part: name is the template's name,
// tree its parse tree (for an HTML part, as html/template escaped it), and
// fm the functions it was parsed with. It supports text, comments,
// {{.key}}, {{index . "key"}}, {{.}} inside a with, {{if}} and {{with}}
// with else, string literals, parenthesized single commands, calls of the
// functions in fm whose signatures compile knows (funcs), and the escapers
// html/template appends to a pipeline (escapers). Anything else, such as
// range, template calls, variables, number or bool literals, pipelines a
// template author wrote with "|", or fields of anything but the data,
// returns errUnsupported; so do calls with the wrong number of arguments,
// which fail at execution.
func compile(name string, tree *parse.Tree, fm map[string]any) (*program, error) {
	if tree == nil || tree.Root == nil {
		return nil, errUnsupported
	}
	c := &compiler{name: name, tree: tree, funcs: fm}
	run, err := c.list(tree.Root, true)
	if err != nil {
		return nil, err
	}
	return &program{run: run}, nil
}

// list compiles the nodes of l; dotIsData tells whether dot is the data
// map (the top of the template) or a string (inside a with).
func (c *compiler) list(l *parse.ListNode, dotIsData bool) ([]instr, error) {
	if l == nil {
		return nil, nil
	}
	var run []instr
	for _, n := range l.Nodes {
		in, err := c.node(n, dotIsData)
		if err != nil {
			return nil, err
		}
		if in != nil {
			run = append(run, in)
		}
	}
	return run, nil
}

// node compiles one node of a list; a comment compiles to nothing.
func (c *compiler) node(n parse.Node, dotIsData bool) (instr, error) {
	switch n := n.(type) {
	case *parse.TextNode:
		text := n.Text
		return func(b *bytes.Buffer, _ *view, _ string) error {
			b.Write(text)
			return nil
		}, nil
	case *parse.CommentNode:
		return nil, nil
	case *parse.ActionNode:
		return c.action(n, dotIsData)
	case *parse.IfNode:
		return c.ifOrWith(false, n.Pipe, n.List, n.ElseList, dotIsData)
	case *parse.WithNode:
		return c.ifOrWith(true, n.Pipe, n.List, n.ElseList, dotIsData)
	}
	return nil, errUnsupported
}

// action compiles {{pipeline}}: a command, then the escapers html/template
// appended to it, if any, whose output is written.
func (c *compiler) action(n *parse.ActionNode, dotIsData bool) (instr, error) {
	pipe := n.Pipe
	if pipe == nil || len(pipe.Decl) > 0 || len(pipe.Cmds) == 0 {
		return nil, errUnsupported
	}
	v, err := c.command(pipe.Cmds[0], dotIsData)
	if err != nil {
		return nil, err
	}
	var escs []escaper
	for _, cmd := range pipe.Cmds[1:] {
		e, ok := escaperOf(cmd)
		if !ok {
			return nil, errUnsupported
		}
		escs = append(escs, e)
	}
	switch len(escs) {
	case 0:
		return func(b *bytes.Buffer, d *view, dot string) error {
			s, err := v(d, dot)
			if err != nil {
				return err
			}
			b.WriteString(s)
			return nil
		}, nil
	case 1:
		e := escs[0]
		return func(b *bytes.Buffer, d *view, dot string) error {
			s, err := v(d, dot)
			if err != nil {
				return err
			}
			b.Write(e(b.AvailableBuffer(), s))
			return nil
		}, nil
	}
	last, chain := escs[len(escs)-1], escs[:len(escs)-1]
	return func(b *bytes.Buffer, d *view, dot string) error {
		s, err := v(d, dot)
		if err != nil {
			return err
		}
		for _, e := range chain {
			s = string(e(nil, s))
		}
		b.Write(last(b.AvailableBuffer(), s))
		return nil
	}, nil
}

// escaperOf returns the escaper a command of an escaped pipeline calls:
// a bare name html/template's escaping inserted.
func escaperOf(cmd *parse.CommandNode) (escaper, bool) {
	if len(cmd.Args) != 1 {
		return nil, false
	}
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		return nil, false
	}
	e, ok := escapers[id.Ident]
	return e, ok
}

// ifOrWith compiles {{if}} and {{with}}: a string is true when it is not
// empty, and with makes it dot for its list.
func (c *compiler) ifOrWith(with bool, pipe *parse.PipeNode, list, elseList *parse.ListNode, dotIsData bool) (instr, error) {
	if pipe == nil || len(pipe.Decl) > 0 || len(pipe.Cmds) != 1 {
		return nil, errUnsupported
	}
	cond, err := c.command(pipe.Cmds[0], dotIsData)
	if err != nil {
		return nil, err
	}
	then, err := c.list(list, dotIsData && !with)
	if err != nil {
		return nil, err
	}
	els, err := c.list(elseList, dotIsData)
	if err != nil {
		return nil, err
	}
	return func(b *bytes.Buffer, d *view, dot string) error {
		v, err := cond(d, dot)
		switch {
		case err != nil:
			return err
		case v == "":
			return runAll(els, b, d, dot)
		case with:
			return runAll(then, b, d, v)
		}
		return runAll(then, b, d, dot)
	}, nil
}

// command compiles one command of a pipeline.
func (c *compiler) command(cmd *parse.CommandNode, dotIsData bool) (value, error) {
	switch n := cmd.Args[0].(type) {
	case *parse.IdentifierNode:
		return c.call(cmd, n.Ident, dotIsData)
	case *parse.FieldNode, *parse.DotNode, *parse.StringNode, *parse.PipeNode:
		if len(cmd.Args) != 1 {
			return nil, errUnsupported // text/template: "can't give argument to non-function"
		}
		return c.arg(n, dotIsData)
	}
	return nil, errUnsupported
}

// arg compiles an argument: {{.key}} of the data, {{.}} inside a with, a
// string literal, or a parenthesized single command.
func (c *compiler) arg(n parse.Node, dotIsData bool) (value, error) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if !dotIsData || len(n.Ident) != 1 {
			return nil, errUnsupported
		}
		key := n.Ident[0]
		at := c.errorAt(n)
		return func(d *view, _ string) (string, error) {
			if v, ok := d.get(key); ok {
				return v, nil
			}
			return "", at("map has no entry for key %q", key)
		}, nil
	case *parse.DotNode:
		if dotIsData {
			return nil, errUnsupported
		}
		return func(_ *view, dot string) (string, error) { return dot, nil }, nil
	case *parse.StringNode:
		s := n.Text
		return func(*view, string) (string, error) { return s, nil }, nil
	case *parse.PipeNode:
		if len(n.Decl) > 0 || len(n.Cmds) != 1 {
			return nil, errUnsupported
		}
		return c.command(n.Cmds[0], dotIsData)
	}
	return nil, errUnsupported
}

// call compiles a function call: the index builtin on the data with one
// string key, or a function of the part's func map with one of the
// signatures of funcs.
func (c *compiler) call(cmd *parse.CommandNode, name string, dotIsData bool) (value, error) {
	fn, ok := c.funcs[name]
	if !ok {
		if name != "index" || len(cmd.Args) != 3 || !dotIsData {
			return nil, errUnsupported
		}
		// {{index . "key"}}: the value, or "" when the key is absent.
		if _, ok := cmd.Args[1].(*parse.DotNode); !ok {
			return nil, errUnsupported
		}
		key, ok := cmd.Args[2].(*parse.StringNode)
		if !ok {
			return nil, errUnsupported
		}
		k := key.Text
		return func(d *view, _ string) (string, error) { return d.at(k), nil }, nil
	}
	args := make([]value, len(cmd.Args)-1)
	for i, a := range cmd.Args[1:] {
		v, err := c.arg(a, dotIsData)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	at := c.errorAt(cmd)
	failed := func(err error) error { return at("error calling %s: %w", name, err) }
	switch f := fn.(type) {
	case func(string) string: // upper, lower
		if len(args) != 1 {
			return nil, errUnsupported
		}
		a := args[0]
		return func(d *view, dot string) (string, error) {
			s, err := a(d, dot)
			if err != nil {
				return "", err
			}
			return safeCall(func() (string, error) { return f(s), nil }, failed)
		}, nil
	case func(string, string) string: // default
		if len(args) != 2 {
			return nil, errUnsupported
		}
		a0, a1 := args[0], args[1]
		return func(d *view, dot string) (string, error) {
			s0, err := a0(d, dot)
			if err != nil {
				return "", err
			}
			s1, err := a1(d, dot)
			if err != nil {
				return "", err
			}
			return safeCall(func() (string, error) { return f(s0, s1), nil }, failed)
		}, nil
	case func(string, string, string) (string, error): // date
		if len(args) != 3 {
			return nil, errUnsupported
		}
		return call3(args, failed, f), nil
	case func(any, string, string) (string, error): // plural
		if len(args) != 3 {
			return nil, errUnsupported
		}
		return call3(args, failed, func(a, b, c string) (string, error) { return f(a, b, c) }), nil
	case func(any) (string, error): // json
		if len(args) != 1 {
			return nil, errUnsupported
		}
		a := args[0]
		return func(d *view, dot string) (string, error) {
			s, err := a(d, dot)
			if err != nil {
				return "", err
			}
			return safeCall(func() (string, error) { return f(s) }, failed)
		}, nil
	}
	return nil, errUnsupported
}

// call3 calls f with three string arguments, evaluated in order.
func call3(args []value, failed func(error) error, f func(a, b, c string) (string, error)) value {
	a0, a1, a2 := args[0], args[1], args[2]
	return func(d *view, dot string) (string, error) {
		s0, err := a0(d, dot)
		if err != nil {
			return "", err
		}
		s1, err := a1(d, dot)
		if err != nil {
			return "", err
		}
		s2, err := a2(d, dot)
		if err != nil {
			return "", err
		}
		return safeCall(func() (string, error) { return f(s0, s1, s2) }, failed)
	}
}

// safeCall calls f as text/template calls a template function: an error
// it returns, or a panic, becomes failed's error.
func safeCall(f func() (string, error), failed func(error) error) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = failed(e)
			} else {
				err = failed(fmt.Errorf("%v", r))
			}
		}
	}()
	s, err = f()
	if err != nil {
		return "", failed(err)
	}
	return s, nil
}

// errorAt returns a constructor of the errors text/template's execution
// gives for node n, built as its state.errorf builds them (so a '%' in a
// name or node reads the same), as a texttemplate.ExecError.
func (c *compiler) errorAt(n parse.Node) func(format string, args ...any) error {
	location, context := c.tree.ErrorContext(n)
	name := c.name
	return func(format string, args ...any) error {
		format = fmt.Sprintf("template: %s: executing %q at <%s>: %s", location, doublePercent(name), doublePercent(context), format)
		return texttemplate.ExecError{Name: name, Err: fmt.Errorf(format, args...)}
	}
}

func doublePercent(s string) string { return strings.ReplaceAll(s, "%", "%%") }
