package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tarTool is enough of tar for `kubectl cp`, which runs `tar cf - PATH` in
// the container to copy out of it and `tar -xmf - [-C DIR]` to copy in.
// The image holds the binary as /bin/tar too, so kubectl finds it.
func tarTool(args []string) int {
	var mode, dir string
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-C" && i+1 < len(args):
			i++
			dir = args[i]
		case mode == "" && strings.Trim(a, "-cxmfv") == "" && strings.ContainsAny(a, "cx"):
			mode = "c"
			if strings.Contains(a, "x") {
				mode = "x"
			}
			if strings.HasSuffix(a, "f") && i+1 < len(args) && args[i+1] == "-" {
				i++ // the archive is stdin or stdout, the only kind supported
			}
		default:
			files = append(files, a)
		}
	}
	var err error
	switch mode {
	case "c":
		err = tarCreate(os.Stdout, dir, files)
	case "x":
		err = tarExtract(os.Stdin, dir)
	default:
		err = fmt.Errorf("usage: tar cf - [-C DIR] PATH... | tar xf - [-C DIR]")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tar:", err)
		return 2
	}
	return 0
}

// tarCreate writes files (recursively) to w, named as GNU tar names them:
// relative to dir, without a leading slash.
func tarCreate(w io.Writer, dir string, files []string) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		root := f
		if dir != "" && !filepath.IsAbs(f) {
			root = filepath.Join(dir, f)
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(path); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			name := filepath.Join(f, strings.TrimPrefix(path, root))
			h.Name = strings.TrimLeft(filepath.ToSlash(name), "/")
			if d.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if info.Mode().IsRegular() {
				in, err := os.Open(path)
				if err != nil {
					return err
				}
				defer in.Close()
				_, err = io.Copy(tw, in)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// tarExtract writes the archive on r under dir, refusing names that would
// leave it.
func tarExtract(r io.Reader, dir string) error {
	if dir == "" {
		dir = "."
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, h.Name)
		if rel, err := filepath.Rel(dir, target); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("%s: outside %s", h.Name, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, h.FileInfo().Mode().Perm()|0o700)
		case tar.TypeReg:
			err = writeFile(target, tr, h.FileInfo().Mode().Perm())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, target)
		default:
			err = fmt.Errorf("%s: entry type %c not supported", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(path string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
