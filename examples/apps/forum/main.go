//go:build wasip1

// Command forum is the "only peers" forum: the members of a context post and
// comment; every post and comment carries its author (the caller) and its time (the
// tx time), and is announced by an event.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o forum.wasm ./examples/apps/forum
//
// Methods:
//
//	init {name?}                                  (at context creation)
//	create_post {title, body}       -> {id}       emits post_created
//	create_comment {postId, body}   -> {id}       emits comment_created; the post must exist
//	list_posts                      -> {name, posts: [{..., comments: [...]}]}
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/circlegate/circlegate/sdk"
)

// Storage keys. Ids are zero-padded so that key order is id order.
const (
	keyName     = "meta/name"
	keyPostSeq  = "seq/post"
	keyCommSeq  = "seq/comment"
	postPrefix  = "post/"
	commPrefix  = "comment/"
	maxTitle    = 200
	maxBody     = 10000
	defaultName = "only peers"
)

// Post is a post as stored and listed.
type Post struct {
	ID       int64     `json:"id"`
	Title    string    `json:"title"`
	Body     string    `json:"body"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
	Comments []Comment `json:"comments"`
}

// Comment is a comment on a post.
type Comment struct {
	ID     int64     `json:"id"`
	PostID int64     `json:"postId"`
	Body   string    `json:"body"`
	Author string    `json:"author"`
	Time   time.Time `json:"time"`
}

// ID is what create_post and create_comment return.
type ID struct {
	ID int64 `json:"id"`
}

//go:wasmexport init
func initForum() {
	sdk.Exec(func(a struct {
		Name string `json:"name"`
	}) error {
		if a.Name == "" {
			a.Name = defaultName
		}
		if len(a.Name) > maxTitle {
			return errors.New("name is too long")
		}
		sdk.SetJSON(keyName, a.Name)
		return nil
	})
}

//go:wasmexport create_post
func createPost() {
	sdk.Handle(func(a struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}) (ID, error) {
		if err := check("title", a.Title, maxTitle); err != nil {
			return ID{}, err
		}
		if err := check("body", a.Body, maxBody); err != nil {
			return ID{}, err
		}
		p := Post{ID: next(keyPostSeq), Title: a.Title, Body: a.Body, Author: sdk.Caller(), Time: sdk.Now()}
		sdk.SetJSON(postKey(p.ID), p)
		sdk.Emit("post_created", map[string]any{"id": p.ID, "title": p.Title, "author": p.Author, "time": p.Time})
		return ID{p.ID}, nil
	})
}

//go:wasmexport create_comment
func createComment() {
	sdk.Handle(func(a struct {
		PostID int64  `json:"postId"`
		Body   string `json:"body"`
	}) (ID, error) {
		if err := check("body", a.Body, maxBody); err != nil {
			return ID{}, err
		}
		if _, ok := sdk.Get(postKey(a.PostID)); !ok {
			return ID{}, fmt.Errorf("post %d not found", a.PostID)
		}
		c := Comment{ID: next(keyCommSeq), PostID: a.PostID, Body: a.Body, Author: sdk.Caller(), Time: sdk.Now()}
		sdk.SetJSON(commentKey(c.PostID, c.ID), c)
		sdk.Emit("comment_created", c)
		return ID{c.ID}, nil
	})
}

//go:wasmexport list_posts
func listPosts() {
	sdk.Handle(func(struct{}) (map[string]any, error) {
		posts := []Post{}
		var err error
		sdk.Iterate(postPrefix, func(_ string, v []byte) bool {
			var p Post
			if p, err = decode[Post](v); err != nil {
				return false
			}
			p.Comments = []Comment{}
			sdk.Iterate(commentPrefixOf(p.ID), func(_ string, v []byte) bool {
				var c Comment
				if c, err = decode[Comment](v); err == nil {
					p.Comments = append(p.Comments, c)
				}
				return err == nil
			})
			posts = append(posts, p)
			return err == nil
		})
		if err != nil {
			return nil, err
		}
		name := defaultName
		if _, err := sdk.GetJSON(keyName, &name); err != nil {
			return nil, err
		}
		return map[string]any{"name": name, "posts": posts}, nil
	})
}

func check(field, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	}
	return nil
}

// next increments a sequence and returns its new value (ids start at 1).
func next(key string) int64 {
	var n int64
	if _, err := sdk.GetJSON(key, &n); err != nil {
		sdk.Fail("corrupt sequence " + key)
	}
	n++
	sdk.SetJSON(key, n)
	return n
}

func pad(id int64) string {
	s := strconv.FormatInt(id, 10)
	for len(s) < 12 {
		s = "0" + s
	}
	return s
}

func postKey(id int64) string           { return postPrefix + pad(id) }
func commentPrefixOf(post int64) string { return commPrefix + pad(post) + "/" }
func commentKey(post, id int64) string  { return commentPrefixOf(post) + pad(id) }
func decode[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

func main() {}
