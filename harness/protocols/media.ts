// Media protocol: what a machine boots from, changed while it is off. A VM gets a blank disk, an image written to
// its disk or SD card (through an overlay; the image itself is never written) and an ISO in its CD-ROM drive; a board
// gets its SD card written through an SD mux (lab/board.ts flash()).

/** What useMedia() puts in. */
export interface MediaSpec {
  /**
   * The main disk (the SD card on the Pi): `{ blank: bytes }` is an empty disk, `{ image, size? }` an image written
   * to a disk of `size` bytes (default: the image's size; on an SD slot the next power of two).
   */
  disk: { blank: number } | { image: string; format?: string; size?: number };
  /** An ISO in the CD-ROM drive; the firmware boots it when the disk has nothing to boot. */
  cdrom?: string;
}

/** Media control of a machine. */
export interface Media {
  /** Replaces the machine's media; only while it is off. */
  useMedia(media: MediaSpec): Promise<void>;
  /** Takes the ISO out of the running machine's CD-ROM drive; the next boot is from the disk. */
  ejectCdrom(): Promise<void>;
}
