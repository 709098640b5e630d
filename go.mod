module github.com/bearrec/bear

go 1.26
