# strata-node needs no provider: it only renders text from its inputs, so it
# is planned, applied and tested (`terraform test`) offline.
#
# 1.9 is the first release whose variable validations may refer to other
# variables (a reader's broker id depends on its role, and so on).
terraform {
  required_version = ">= 1.9"
}
