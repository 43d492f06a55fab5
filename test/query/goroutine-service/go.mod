module riptide.test/goroutine

go 1.19
