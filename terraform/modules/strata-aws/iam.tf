# One instance role for every node: no access keys anywhere. It may list the
# bucket only under the cluster's prefix and read, write and delete only
# objects under it.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "tier" {
  statement {
    sid       = "ListTheClusterPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.tier.arn]
    # IfExists: HeadBucket, and S3's check whether a missing key is a 404
    # (rather than a 403), carry no s3:prefix; Strata relies on both. Any
    # listing that names a prefix must name the cluster's.
    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = [var.tier_prefix, "${var.tier_prefix}/*"]
    }
  }

  statement {
    sid = "ObjectsUnderTheClusterPrefix"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.tier.arn}/${var.tier_prefix}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "TheBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.name}-node-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "tier" {
  name   = "strata-cold-tier"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.tier.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.name}-node-"
  role        = aws_iam_role.node.name
  tags        = local.tags
}
