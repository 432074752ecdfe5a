// unix-get: a minimal HTTP GET over a unix socket, for busybox test containers (busybox nc has
// no unix-socket mode, and no registry is reachable to pull an image with curl). Stdlib only;
// build with CGO_ENABLED=0 for a static binary that can be bind-mounted into any container.
//
//	unix-get -socket /run/flashpods/token.sock [-bearer-file F | -bearer-env VAR] /tokens
//
// Prints "STATUS <code>" on the first line, then the body. The bearer token is read from a file
// or an environment variable so it never appears in a command line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	socket := flag.String("socket", "/run/flashpods/token.sock", "unix socket")
	bearerFile := flag.String("bearer-file", "", "file holding the bearer token")
	bearerEnv := flag.String("bearer-env", "", "environment variable holding the bearer token")
	header := flag.String("authorization", "", "raw Authorization header value (for malformed-header tests)")
	flag.Parse()
	path := flag.Arg(0)
	if path == "" {
		path = "/"
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", *socket)
		}},
	}
	req, err := http.NewRequest(http.MethodGet, "http://token-service"+path, nil)
	if err != nil {
		fail(err)
	}
	token := ""
	if *bearerFile != "" {
		b, err := os.ReadFile(*bearerFile)
		if err != nil {
			fail(err)
		}
		token = strings.TrimSpace(string(b))
	} else if *bearerEnv != "" {
		token = strings.TrimSpace(os.Getenv(*bearerEnv))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	} else if *header != "" {
		req.Header.Set("Authorization", *header)
	}
	res, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("STATUS %d\n%s\n", res.StatusCode, body)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "unix-get:", err)
	os.Exit(2)
}
