// Package capage serves tlsresume's CA certificate for download, in each
// of certs.Formats, for a phone or a browser to install: the live view
// (proxy/web) and the magic host (http://tlsresume.proxy/) both offer it.
// Only certificates: never a key.
package capage

import (
	"net/http"

	"github.com/tlsresume/tlsresume/certs"
)

// Files serves GET …/{file}: ca's certificate in the format whose file
// name is the path value "file" (certs.Format.FileName). A nil ca, or
// another name, is not found.
func Files(ca *certs.CA) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ca == nil {
			http.NotFound(w, r)
			return
		}
		for _, f := range certs.Formats() {
			if f.FileName() != r.PathValue("file") {
				continue
			}
			b, err := ca.Export(f)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", f.ContentType())
			w.Header().Set("Content-Disposition", `attachment; filename="`+f.FileName()+`"`)
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	})
}
