//! Request and response codes (`RequestCode.java`, `ResponseCode.java`, `RemotingSysResponseCode.java`).

/// Request codes.
pub mod request {
    /// Send a message (long field names).
    pub const SEND_MESSAGE: i32 = 10;
    /// Pull messages.
    pub const PULL_MESSAGE: i32 = 11;
    /// Query a consumer group's committed offset of a queue.
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    /// Commit a consumer group's offset of a queue.
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    /// Create or update a topic on a broker.
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    /// Find the offset of a queue at a timestamp.
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    /// A queue's max offset.
    pub const GET_MAX_OFFSET: i32 = 30;
    /// A queue's min offset.
    pub const GET_MIN_OFFSET: i32 = 31;
    /// Client heartbeat to a broker.
    pub const HEART_BEAT: i32 = 34;
    /// A client leaves.
    pub const UNREGISTER_CLIENT: i32 = 35;
    /// A consumer sends a message back for a retry.
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    /// Commit or roll back a transaction.
    pub const END_TRANSACTION: i32 = 37;
    /// The client ids of a consumer group.
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    /// Broker asks a producer for a transaction's state.
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    /// Broker tells a group's clients that membership changed (oneway).
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// Lock queues for orderly consumption.
    pub const LOCK_BATCH_MQ: i32 = 41;
    /// Unlock queues.
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    /// A broker's whole consumer offset table (a slave syncing from its master).
    pub const GET_ALL_CONSUMER_OFFSET: i32 = 43;
    /// A broker's delay-level cursors, `delayOffset.json` (a slave syncing from its master).
    pub const GET_ALL_DELAY_OFFSET: i32 = 45;
    /// Put a KV config on a NameServer.
    pub const PUT_KV_CONFIG: i32 = 100;
    /// Get a KV config from a NameServer.
    pub const GET_KV_CONFIG: i32 = 101;
    /// A broker registers with a NameServer.
    pub const REGISTER_BROKER: i32 = 103;
    /// A broker unregisters.
    pub const UNREGISTER_BROKER: i32 = 104;
    /// A topic's route.
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// The cluster's brokers.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    /// Clear a broker's write permission on a NameServer.
    pub const WIPE_WRITE_PERM_OF_BROKER: i32 = 205;
    /// Every topic a NameServer knows.
    pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
    /// Delete a topic from a NameServer.
    pub const DELETE_TOPIC_IN_NAMESRV: i32 = 216;
    /// Send a message (short field names, the default).
    pub const SEND_MESSAGE_V2: i32 = 310;
    /// Send a batch of messages.
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// Has the NameServer's view of a broker changed?
    pub const QUERY_DATA_VERSION: i32 = 322;
    /// Give a broker its write permission back.
    pub const ADD_WRITE_PERM_OF_BROKER: i32 = 327;
    /// Broker heartbeat to a NameServer (5.x acting-master mode).
    pub const BROKER_HEARTBEAT: i32 = 904;
    /// Messages by key (the broker's index).
    pub const QUERY_MESSAGE: i32 = 12;
    /// The broker's whole topic table.
    pub const GET_ALL_TOPIC_CONFIG: i32 = 21;
    /// The broker's runtime figures (a KV table).
    pub const GET_BROKER_RUNTIME_INFO: i32 = 28;
    /// One message by commit-log offset.
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    /// Min and max offsets of a topic's queues on a broker.
    pub const GET_TOPIC_STATS_INFO: i32 = 202;
    /// A group's connections and subscriptions on a broker.
    pub const GET_CONSUMER_CONNECTION_LIST: i32 = 203;
    /// A group's offsets against the queues' ends.
    pub const GET_CONSUME_STATS: i32 = 208;
    /// Delete a topic on a broker.
    pub const DELETE_TOPIC_IN_BROKER: i32 = 215;
    /// A consumer's process queues (the broker forwards it to the client).
    pub const GET_CONSUMER_RUNNING_INFO: i32 = 307;
    /// Create or change a subscription group (`mqadmin updateSubGroup`).
    pub const UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: i32 = 200;
    /// The broker's subscription group table.
    pub const GET_ALL_SUBSCRIPTIONGROUP_CONFIG: i32 = 201;
    /// Delete a subscription group (`mqadmin deleteSubGroup`).
    pub const DELETE_SUBSCRIPTIONGROUP: i32 = 207;
}

/// Response codes.
pub mod response {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// A server-side error; the remark says which.
    pub const SYSTEM_ERROR: i32 = 1;
    /// The server is busy (flow control).
    pub const SYSTEM_BUSY: i32 = 2;
    /// The request code is unknown to the server.
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    /// Stored, not known to be flushed in time.
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    /// Stored, no slave in sync.
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    /// Stored, the slave did not confirm in time.
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    /// The message is malformed or too large.
    pub const MESSAGE_ILLEGAL: i32 = 13;
    /// The service is not available (e.g. a slave asked to store).
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    /// The version is not supported.
    pub const VERSION_NOT_SUPPORTED: i32 = 15;
    /// No permission.
    pub const NO_PERMISSION: i32 = 16;
    /// The topic does not exist.
    pub const TOPIC_NOT_EXIST: i32 = 17;
    /// The topic exists already.
    pub const TOPIC_EXIST_ALREADY: i32 = 18;
    /// Pull: nothing found.
    pub const PULL_NOT_FOUND: i32 = 19;
    /// Pull: retry at once.
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    /// Pull: the offset moved.
    pub const PULL_OFFSET_MOVED: i32 = 21;
    /// Query: nothing found.
    pub const QUERY_NOT_FOUND: i32 = 22;
    /// The subscription could not be parsed.
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
    /// The subscription does not exist.
    pub const SUBSCRIPTION_NOT_EXIST: i32 = 24;
    /// The subscription is not the latest.
    pub const SUBSCRIPTION_NOT_LATEST: i32 = 25;
    /// The subscription group does not exist.
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    /// A parameter is invalid.
    pub const INVALID_PARAMETER: i32 = 29;
    /// No consumer of the group is online.
    pub const CONSUMER_NOT_ONLINE: i32 = 206;
    /// A 5.x proxy is going away.
    pub const GO_AWAY: i32 = 1500;
    /// A consumer did not answer a forwarded request in time.
    pub const CONSUME_MSG_TIMEOUT: i32 = 207;
    /// The broker asks the client to slow down.
    pub const FLOW_CONTROL: i32 = 215;
    /// The request is not allowed (illegal operation).
    pub const ILLEGAL_OPERATION: i32 = 604;
}

/// The name of a request code, if it is one this crate knows.
pub fn request_name(code: i32) -> Option<&'static str> {
    use request::*;
    Some(match code {
        SEND_MESSAGE => "SEND_MESSAGE",
        PULL_MESSAGE => "PULL_MESSAGE",
        QUERY_CONSUMER_OFFSET => "QUERY_CONSUMER_OFFSET",
        UPDATE_CONSUMER_OFFSET => "UPDATE_CONSUMER_OFFSET",
        UPDATE_AND_CREATE_TOPIC => "UPDATE_AND_CREATE_TOPIC",
        SEARCH_OFFSET_BY_TIMESTAMP => "SEARCH_OFFSET_BY_TIMESTAMP",
        GET_MAX_OFFSET => "GET_MAX_OFFSET",
        GET_MIN_OFFSET => "GET_MIN_OFFSET",
        HEART_BEAT => "HEART_BEAT",
        UNREGISTER_CLIENT => "UNREGISTER_CLIENT",
        CONSUMER_SEND_MSG_BACK => "CONSUMER_SEND_MSG_BACK",
        END_TRANSACTION => "END_TRANSACTION",
        GET_CONSUMER_LIST_BY_GROUP => "GET_CONSUMER_LIST_BY_GROUP",
        CHECK_TRANSACTION_STATE => "CHECK_TRANSACTION_STATE",
        NOTIFY_CONSUMER_IDS_CHANGED => "NOTIFY_CONSUMER_IDS_CHANGED",
        LOCK_BATCH_MQ => "LOCK_BATCH_MQ",
        UNLOCK_BATCH_MQ => "UNLOCK_BATCH_MQ",
        GET_ALL_CONSUMER_OFFSET => "GET_ALL_CONSUMER_OFFSET",
        GET_ALL_DELAY_OFFSET => "GET_ALL_DELAY_OFFSET",
        PUT_KV_CONFIG => "PUT_KV_CONFIG",
        GET_KV_CONFIG => "GET_KV_CONFIG",
        REGISTER_BROKER => "REGISTER_BROKER",
        UNREGISTER_BROKER => "UNREGISTER_BROKER",
        GET_ROUTEINFO_BY_TOPIC => "GET_ROUTEINFO_BY_TOPIC",
        GET_BROKER_CLUSTER_INFO => "GET_BROKER_CLUSTER_INFO",
        WIPE_WRITE_PERM_OF_BROKER => "WIPE_WRITE_PERM_OF_BROKER",
        GET_ALL_TOPIC_LIST_FROM_NAMESERVER => "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
        DELETE_TOPIC_IN_NAMESRV => "DELETE_TOPIC_IN_NAMESRV",
        SEND_MESSAGE_V2 => "SEND_MESSAGE_V2",
        SEND_BATCH_MESSAGE => "SEND_BATCH_MESSAGE",
        QUERY_DATA_VERSION => "QUERY_DATA_VERSION",
        ADD_WRITE_PERM_OF_BROKER => "ADD_WRITE_PERM_OF_BROKER",
        BROKER_HEARTBEAT => "BROKER_HEARTBEAT",
        QUERY_MESSAGE => "QUERY_MESSAGE",
        GET_ALL_TOPIC_CONFIG => "GET_ALL_TOPIC_CONFIG",
        GET_BROKER_RUNTIME_INFO => "GET_BROKER_RUNTIME_INFO",
        VIEW_MESSAGE_BY_ID => "VIEW_MESSAGE_BY_ID",
        GET_TOPIC_STATS_INFO => "GET_TOPIC_STATS_INFO",
        GET_CONSUMER_CONNECTION_LIST => "GET_CONSUMER_CONNECTION_LIST",
        GET_CONSUME_STATS => "GET_CONSUME_STATS",
        DELETE_TOPIC_IN_BROKER => "DELETE_TOPIC_IN_BROKER",
        GET_CONSUMER_RUNNING_INFO => "GET_CONSUMER_RUNNING_INFO",
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
        GET_ALL_SUBSCRIPTIONGROUP_CONFIG => "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
        DELETE_SUBSCRIPTIONGROUP => "DELETE_SUBSCRIPTIONGROUP",
        _ => return None,
    })
}

/// The name of a response code, if it is one this crate knows.
pub fn response_name(code: i32) -> Option<&'static str> {
    use response::*;
    Some(match code {
        SUCCESS => "SUCCESS",
        SYSTEM_ERROR => "SYSTEM_ERROR",
        SYSTEM_BUSY => "SYSTEM_BUSY",
        REQUEST_CODE_NOT_SUPPORTED => "REQUEST_CODE_NOT_SUPPORTED",
        FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
        SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
        FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
        MESSAGE_ILLEGAL => "MESSAGE_ILLEGAL",
        SERVICE_NOT_AVAILABLE => "SERVICE_NOT_AVAILABLE",
        VERSION_NOT_SUPPORTED => "VERSION_NOT_SUPPORTED",
        NO_PERMISSION => "NO_PERMISSION",
        TOPIC_NOT_EXIST => "TOPIC_NOT_EXIST",
        TOPIC_EXIST_ALREADY => "TOPIC_EXIST_ALREADY",
        PULL_NOT_FOUND => "PULL_NOT_FOUND",
        PULL_RETRY_IMMEDIATELY => "PULL_RETRY_IMMEDIATELY",
        PULL_OFFSET_MOVED => "PULL_OFFSET_MOVED",
        QUERY_NOT_FOUND => "QUERY_NOT_FOUND",
        SUBSCRIPTION_PARSE_FAILED => "SUBSCRIPTION_PARSE_FAILED",
        SUBSCRIPTION_NOT_EXIST => "SUBSCRIPTION_NOT_EXIST",
        SUBSCRIPTION_NOT_LATEST => "SUBSCRIPTION_NOT_LATEST",
        SUBSCRIPTION_GROUP_NOT_EXIST => "SUBSCRIPTION_GROUP_NOT_EXIST",
        INVALID_PARAMETER => "INVALID_PARAMETER",
        CONSUMER_NOT_ONLINE => "CONSUMER_NOT_ONLINE",
        CONSUME_MSG_TIMEOUT => "CONSUME_MSG_TIMEOUT",
        FLOW_CONTROL => "FLOW_CONTROL",
        ILLEGAL_OPERATION => "ILLEGAL_OPERATION",
        GO_AWAY => "GO_AWAY",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_known_codes() {
        assert_eq!(request_name(310), Some("SEND_MESSAGE_V2"));
        assert_eq!(request_name(105), Some("GET_ROUTEINFO_BY_TOPIC"));
        assert_eq!(request_name(7777), None);
        assert_eq!(response_name(3), Some("REQUEST_CODE_NOT_SUPPORTED"));
        assert_eq!(response_name(17), Some("TOPIC_NOT_EXIST"));
    }
}
