package templates

import (
	"strings"
	"text/template/parse"
)

// treeOf returns the parse tree of part p of l, nil if it has none.
func treeOf(l *localized, p string) *parse.Tree {
	if pp := l.parts[p]; pp != nil {
		return pp.tree
	}
	return nil
}

// rangeOverNumber finds a {{range N}} (Go templates range over integers):
// text/template cannot be interrupted, so a large N would hold lint, a
// reload and every worker that renders it for as long as it runs. It
// returns the 1-based line in src of the first one.
func rangeOverNumber(src string, t *parse.Tree) (line int, found bool) {
	if t == nil || t.Root == nil {
		return 0, false
	}
	var walk func(n parse.Node) bool
	walk = func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return false
			}
			for _, c := range n.Nodes {
				if walk(c) {
					return true
				}
			}
		case *parse.RangeNode:
			if n.Pipe != nil && len(n.Pipe.Cmds) > 0 {
				last := n.Pipe.Cmds[len(n.Pipe.Cmds)-1]
				if len(last.Args) == 1 {
					if _, ok := last.Args[0].(*parse.NumberNode); ok {
						line = 1 + strings.Count(src[:min(int(n.Position()), len(src))], "\n")
						return true
					}
				}
			}
			return walk(n.List) || walk(n.ElseList)
		case *parse.IfNode:
			return walk(n.List) || walk(n.ElseList)
		case *parse.WithNode:
			return walk(n.List) || walk(n.ElseList)
		}
		return false
	}
	return line, walk(t.Root)
}
