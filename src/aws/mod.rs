//! What every stage that talks to AWS shares: today the retry layer (`retry`) every DynamoDB
//! call goes through.

pub mod retry;
