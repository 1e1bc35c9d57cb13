#if canImport(Glibc)
import Glibc
#endif

/// The frames of a capture file read once, on a thread of their own, for every worker of a
/// parallel replay.
///
/// Every worker needs every frame (to keep the packet clocks and to agree on who owns each
/// flow), and when each read the file itself, each paid the kernel's copy into the stdio
/// buffer and libpcap's copy out of it: ~15% of all CPU time on the HTTP benchmark capture
/// for two workers. Here libpcap reads the file once; frames are copied side by side into
/// batches of about `batchBytes`, and each worker walks the same batches in order. A batch
/// is reused once every worker is done with it, and the reader waits while `depth` batches
/// are in use, so memory stays bounded whatever the capture's size. Locking is per batch
/// (hundreds of frames), not per frame.
final class SharedFrames {
    static let batchBytes = 512 * 1024
    static let batchFrames = 4096
    static let depth = 8

    /// Frames side by side: `records[i]` is where frame i is in `bytes` and its timestamp.
    final class Batch {
        private(set) var bytes: UnsafeMutableRawPointer
        private(set) var capacity: Int
        private(set) var used = 0
        var records: [(timestamp: Timestamp, offset: Int, count: Int)] = []
        /// The last batch: after its frames comes the end of the file, or `error`.
        var isLast = false
        var error: Error?
        /// Workers still to read it (set by the reader when it is handed over).
        fileprivate var readers = 0

        private let maxFrames: Int

        init(maxFrames: Int) {
            self.maxFrames = maxFrames
            capacity = SharedFrames.batchBytes
            bytes = .allocate(byteCount: capacity, alignment: 16)
            records.reserveCapacity(min(maxFrames, SharedFrames.batchFrames))
        }

        deinit { bytes.deallocate() }

        /// Whether a frame of `count` bytes still fits (an empty batch takes any frame).
        func fits(_ count: Int) -> Bool {
            records.isEmpty || (used + count <= capacity && records.count < maxFrames)
        }

        func append(timestamp: Timestamp, frame: UnsafeRawBufferPointer) {
            if used + frame.count > capacity {
                // Only an empty batch gets here (`fits`): a frame larger than a batch.
                bytes.deallocate()
                capacity = max(capacity, frame.count)
                bytes = .allocate(byteCount: capacity, alignment: 16)
            }
            if let base = frame.baseAddress, frame.count > 0 { (bytes + used).copyMemory(from: base, byteCount: frame.count) }
            records.append((timestamp, used, frame.count))
            used += frame.count
        }

        func frame(_ i: Int) -> UnsafeRawBufferPointer {
            let r = records[i]
            return UnsafeRawBufferPointer(start: bytes + r.offset, count: r.count)
        }

        fileprivate func reset() {
            used = 0
            records.removeAll(keepingCapacity: true)
            isLast = false
            error = nil
        }
    }

    let linkType: Int32
    private let workers: Int
    private let framesPerBatch: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Batches handed over and not yet read by every worker, oldest first; `first` is the
    /// sequence number of `inFlight[0]`.
    private var inFlight: [Batch] = []
    private var first = 0
    private var spare: [Batch] = []
    private var thread: WorkerThread?

    /// Starts reading `source` on a thread of its own. (`framesPerBatch`: tests make it small,
    /// to cross many batch boundaries on small captures.)
    init(source: PcapSource, workers: Int, framesPerBatch: Int = SharedFrames.batchFrames) {
        linkType = source.linkType
        self.workers = workers
        self.framesPerBatch = max(1, framesPerBatch)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
        thread = WorkerThread { [unowned self] in self.read(source) }
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    /// Waits for the reading thread (after every worker reached the last batch).
    func join() {
        thread?.join()
        thread = nil
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    private func read(_ source: PcapSource) {
        var batch = fresh()
        do {
            while try source.next({ timestamp, frame, _ in
                if !batch.fits(frame.count) {
                    hand(batch)
                    batch = fresh()
                }
                batch.append(timestamp: timestamp, frame: frame)
            }) == .packet {}
        } catch {
            batch.error = error
        }
        batch.isLast = true
        hand(batch)
    }

    private func fresh() -> Batch {
        locked { spare.popLast() } ?? Batch(maxFrames: framesPerBatch)
    }

    /// Reader: makes `batch` readable, waiting while `depth` batches are in use.
    private func hand(_ batch: Batch) {
        locked {
            while inFlight.count >= SharedFrames.depth { pthread_cond_wait(changed, mutex) }
            batch.readers = workers
            inFlight.append(batch)
            pthread_cond_broadcast(changed)
        }
    }

    /// Worker: batch number `sequence` (each worker counts from 0), waiting for it.
    func batch(_ sequence: Int) -> Batch {
        locked {
            while sequence - first >= inFlight.count { pthread_cond_wait(changed, mutex) }
            return inFlight[sequence - first]
        }
    }

    /// Worker: done with batch number `sequence`; the last worker to be done frees it for
    /// the reader.
    func release(_ sequence: Int) {
        locked {
            let batch = inFlight[sequence - first]
            batch.readers -= 1
            // Workers release in order and each batch once, so only the oldest can be done.
            while let oldest = inFlight.first, oldest.readers == 0 {
                inFlight.removeFirst()
                first += 1
                oldest.reset()
                spare.append(oldest)
                pthread_cond_broadcast(changed)
            }
        }
    }

    /// Worker: feeds every frame to `sniffer` as `Replay.run` does (`afterEachPacket` after
    /// each, the sniffer finished at the end), then throws the read error if the capture was
    /// damaged part way. `afterEachBatch` runs before the worker lets go of a batch and
    /// waits for the next one.
    func replay(into sniffer: Sniffer, afterEachPacket: () -> Void, afterEachBatch: () -> Void) throws {
        var sequence = 0
        while true {
            let batch = self.batch(sequence)
            for i in 0..<batch.records.count {
                sniffer.handle(linkType: linkType, timestamp: batch.records[i].timestamp, frame: batch.frame(i))
                afterEachPacket()
            }
            let (isLast, error) = (batch.isLast, batch.error)
            if !isLast { afterEachBatch() }
            release(sequence)
            sequence += 1
            if isLast {
                sniffer.finish()
                if let error { throw error }
                return
            }
        }
    }
}
