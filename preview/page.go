package preview

import (
	"html/template"
	"unicode/utf8"
)

var pageTemplate = template.Must(template.New("preview").Funcs(template.FuncMap{
	"chars": utf8.RuneCountInString,
	"plural": func(n int, one, other string) string {
		if n == 1 {
			return one
		}
		return other
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="herald-version" content="{{.Version}}">
<title>herald · template preview</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem 2rem;color:#222;background:#fafafa}
 h1{margin:0 0 .2rem} h2{margin:2rem 0 .2rem;font-size:1.3rem} h3{font-size:1rem;margin:1rem 0 .4rem;color:#444}
 .meta{color:#666} code{font:12px ui-monospace,monospace;color:#444}
 nav a{margin-right:.8rem} .bad{color:#b00020;font-weight:600}
 ul.problems{margin:.4rem 0;padding:.4rem .6rem .4rem 1.6rem;background:#fde8ea;border-left:4px solid #b00020;border-radius:4px}
 ul.problems li{font:12px/1.4 ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}
 .cards{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
 .card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.6rem .8rem;box-sizing:border-box}
 .card.problem{border-color:#b00020}
 .card header{font-size:12px;color:#555;margin-bottom:.4rem}
 .ch{font-weight:700;text-transform:uppercase;font-size:11px;padding:.1rem .4rem;border-radius:4px}
 .email .ch{background:#e3f0ff}.sms .ch{background:#e6f7e9}.push .ch{background:#fff2dd}
 .card.email{width:56rem;max-width:100%} .email .parts{display:flex;gap:.8rem}
 .email iframe{width:30rem;height:22rem;border:1px solid #ccc;background:#fff}
 .email pre{flex:1;height:22rem;overflow:auto;margin:0;background:#f6f6f6;padding:.5rem}
 pre{white-space:pre-wrap;font:12px/1.4 ui-monospace,monospace}
 .card.sms{width:20rem} .bubble{background:#e9e9eb;border-radius:16px;padding:.5rem .8rem;white-space:pre-wrap}
 .card.push{width:22.5rem} .phone{background:#1c1c1e;border-radius:22px;padding:1.2rem .7rem}
 .notif{background:rgba(255,255,255,.92);border-radius:14px;padding:.55rem .7rem;font-size:13px}
 .notif .app{font-size:11px;color:#666;text-transform:uppercase} .notif .title{font-weight:600}
 .stats{font-size:12px;color:#555;margin-top:.4rem} .stats b{color:#222}
 .err{color:#b00020;font:12px ui-monospace,monospace;white-space:pre-wrap}
 form{display:inline} button{font-size:12px}
</style>
<script>
// Poll the tree's version; when a file changes, fetch the page again and
// swap its body in (scroll position kept).
(function () {
  var shown = document.querySelector('meta[name=herald-version]').content;
  function poll() {
    fetch('version', {cache: 'no-store'}).then(function (r) { return r.text(); }).then(function (v) {
      v = v.trim();
      if (!v || v === shown) { return; }
      return fetch('./', {cache: 'no-store'}).then(function (r) { return r.text(); }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        shown = doc.querySelector('meta[name=herald-version]').content;
        var y = window.scrollY;
        document.documentElement.replaceChild(doc.body, document.body);
        window.scrollTo(0, y);
      });
    }).catch(function () {}).then(function () { setTimeout(poll, 1000); });
  }
  setTimeout(poll, 1000);
})();
</script>
</head><body>
<h1>Template preview</h1>
<div class="meta">{{.Source}} · version <code id="version">{{.Version}}</code> · {{len .Types}} event {{plural (len .Types) "type" "types"}} · {{.Cards}} {{plural .Cards "message" "messages"}} ·
 {{if .Problems}}<span class="bad" id="problem-count">{{.Problems}} {{plural .Problems "problem" "problems"}}</span>{{else}}<span id="problem-count">no problems</span>{{end}}
 · updates when a file changes</div>
{{if .Err}}<ul class="problems" id="tree-error"><li>{{.Err}}</li></ul>{{end}}
{{with .Global}}<ul class="problems global">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
<nav>{{range .Types}}<a href="#{{.Name}}">{{.Name}}</a>{{end}}</nav>
{{$publish := .Publish}}
{{range .Types}}{{$type := .Name}}
<section class="type" id="{{.Name}}" data-type="{{.Name}}">
 <h2>{{.Name}}</h2>
 {{with .Description}}<div class="meta">{{.}}</div>{{end}}
 {{with .Problems}}<ul class="problems">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
 {{if not .Loaded}}<p class="meta">Not loaded: fix the problems above to see its messages.</p>{{end}}
 {{range .Samples}}
 <div class="sample" data-sample="{{.File}}">
  <h3><code>{{.File}}</code>
  {{if $publish}}<form method="post" action="publish"><input type="hidden" name="type" value="{{$type}}"><input type="hidden" name="sample" value="{{.Name}}"><button title="publish this sample event to the events topic (with a fresh id)">send</button></form>{{end}}</h3>
  <div class="cards">
  {{range .Cards}}
  <article class="card {{.Channel}}{{if or .Problems .Err}} problem{{end}}" data-channel="{{.Channel}}" data-locale="{{.Locale}}" data-template="{{.Template}}" data-recipient="{{.Recipient}}">
   <header><span class="ch">{{.Channel}}</span> <b>{{.Locale}}</b> · {{.Template}} · to <code>{{.To}}</code> ({{.Recipient}})</header>
   {{if .Err}}<div class="err">{{.Err}}</div>
   {{else if eq .Channel "email"}}
    <div><b class="subject">{{.Subject}}</b>{{range .Attach}} · 📎 {{.}}{{end}}</div>
    <div class="parts">
     <iframe sandbox="" title="HTML part" srcdoc="{{.HTML}}"></iframe>
     <pre class="text">{{.Text}}</pre>
    </div>
   {{else if eq .Channel "sms"}}
    <div class="bubble">{{.Text}}</div>
    <div class="stats"><b class="encoding">{{.SMS.Encoding}}</b> · <b class="segments">{{.SMS.Segments}} {{plural .SMS.Segments "segment" "segments"}}</b> · {{.SMS.Units}} characters{{if .SMS.NonGSMAt}} · UCS-2 because of <code>{{printf "%q" .SMS.NonGSM}}</code> at {{.SMS.NonGSMAt}}{{end}}</div>
   {{else if eq .Channel "push"}}
    <div class="phone"><div class="notif"><div class="app">herald gym · now</div><div class="title">{{.Title}}</div><div class="body">{{.Text}}</div></div></div>
    <div class="stats">title {{chars .Title}}/65 · body {{chars .Text}}/240 characters · payload {{.PushBytes}} of 4096 bytes</div>
   {{else}}
    {{range .Parts}}<div class="part"><b>{{.File}}</b><pre class="text">{{.Text}}</pre></div>{{end}}
   {{end}}
   {{with .Problems}}<ul class="problems">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
  </article>
  {{end}}
  </div>
 </div>
 {{end}}
</section>
{{end}}
</body></html>
`))
