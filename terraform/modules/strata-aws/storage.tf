# The cold tier: one private, encrypted bucket. Segment objects move to a
# cheaper (still directly readable) storage class after a while; manifests
# stay in STANDARD and never expire.

resource "aws_s3_bucket" "tier" {
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "${var.name}-tier-" : null
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "tier" {
  bucket = aws_s3_bucket.tier.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "tier" {
  bucket                  = aws_s3_bucket.tier.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "tier" {
  bucket = aws_s3_bucket.tier.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

data "aws_iam_policy_document" "tier_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.tier.arn,
      "${aws_s3_bucket.tier.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tier" {
  bucket = aws_s3_bucket.tier.id
  policy = data.aws_iam_policy_document.tier_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.tier]
}

resource "aws_s3_bucket_lifecycle_configuration" "tier" {
  bucket = aws_s3_bucket.tier.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = "${var.tier_prefix}/"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Segment objects are <prefix>/<cluster>/<broker>/<20-digit offset>.seg;
  # the manifest is <prefix>/<cluster>/<broker>/manifest/…, which the
  # "<broker>/0" prefix leaves out.
  dynamic "rule" {
    for_each = var.tier_transition_days != null || var.tier_expiration_days != null ? local.broker_names : []
    content {
      id     = "segments-${rule.value}"
      status = "Enabled"
      filter {
        prefix = "${var.tier_prefix}/${var.cluster_name}/${rule.value}/0"
      }
      dynamic "transition" {
        for_each = var.tier_transition_days == null ? [] : [var.tier_transition_days]
        content {
          days          = transition.value
          storage_class = var.tier_transition_storage_class
        }
      }
      dynamic "expiration" {
        for_each = var.tier_expiration_days == null ? [] : [var.tier_expiration_days]
        content {
          days = expiration.value
        }
      }
    }
  }
}
