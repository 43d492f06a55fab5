module riptide.test/gotls

go 1.19
